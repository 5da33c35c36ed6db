// The client SDK's entry: a payer that finds nodes, routes each request to the best one for its adapter, pays it
// with vouchers from the payer's key, checks its receipt, and fails over before the first token. Explicit
// start/stop: discovery may run a libp2p peer.
//
//   const client = await PayingClient.create({ rpcUrl, deployment, account, dataDir, discovery: { bootstrap } });
//   await client.start();
//   const answer = await client.createCompletion({ model: adapterId, prompt: "Once upon a time", max_tokens: 32 });
//   answer.choices[0].text; answer.openlora.receipt; answer.openlora.node
//   const stream = await client.createChatCompletion({ model, messages, stream: true });
//   for await (const chunk of stream) ...; const payment = await stream.payment;
//   new OpenAI({ baseURL: "http://openlora/v1", apiKey: "unused", fetch: client.fetch });
//   await client.stop();
import { join } from "node:path";
import {
  createPublicClient,
  createWalletClient,
  custom,
  getAddress,
  http,
  isAddressEqual,
  type Account,
  type Address,
  type Chain,
  type Hex,
  type LocalAccount,
  type Transport,
  type WalletClient,
} from "viem";
import { availableFor, type Deployment, type Receipt, type ReadClient } from "../chain/index.ts";
import { Emitter } from "../engine/index.ts";
import { NoRouteError, rankCandidates, type Candidate, type PeerNodeTimings } from "../p2p/index.ts";
import { ChannelLocks } from "./channel-locks.ts";
import { CompletionStream } from "./completion-stream.ts";
import { GossipDiscovery, HttpDiscovery, type Discovery } from "./discovery.ts";
import { NoDepositError, NodeAttemptError, ReceiptError, UnknownModelError } from "./errors.ts";
import { ListingResolver, type PaymentTarget } from "./listings.ts";
import {
  attemptNode,
  type AttemptContext,
  type AttemptEvent,
  type AttemptProgress,
  type NodeRef,
} from "./node-attempt.ts";
import { assembleCompletion, type Chunk, type Endpoint } from "./openai-shapes.ts";
import { PayerState, type PayerStateData } from "./payer-state.ts";
import { SpendingGuard, type SpendingLimits, type SpendingView } from "./spending.ts";
import { paidFetch } from "./paid-fetch.ts";

export interface DiscoveryOptions {
  /** Join the gossip through these multiaddrs (ending in /p2p/<peer id>). */
  bootstrap?: string[];
  /** Or ask these nodes' GET /v1/peers (base URLs). */
  peersFrom?: string[];
  /** libp2p listen addresses of the client's peer. Default 127.0.0.1 on a free port. */
  listen?: string[];
  /** Gossip timings (tests use short ones). */
  timings?: Partial<PeerNodeTimings>;
}

export interface PayingClientOptions {
  /** JSON-RPC URL of the chain, or a public client (e.g. Hardhat's in-process provider). One of the two. */
  rpcUrl?: string;
  publicClient?: ReadClient;
  deployment: Deployment;
  /** The payer's key (a keystore's unlocked account): it signs every voucher. */
  account: LocalAccount;
  /** Folder of the payer's state: channels, spending, disputes. */
  dataDir: string;
  discovery: DiscoveryOptions;
  limits?: SpendingLimits;
  /** Nodes asking more per token are not used. */
  maxPricePerToken?: bigint;
  /** Model names of the caller: alias -> listing id or content hash. */
  aliases?: Record<string, Hex>;
  /** For the HTTP calls to nodes (tests may wrap it). */
  fetch?: typeof fetch;
}

/** Where a paid request ran and what it cost. */
export interface PaymentInfo {
  model: string;
  listingId: Hex;
  contentHash: Hex;
  node: NodeRef;
  pricePerToken: bigint;
  /** The request's most: price x (prompt + max_tokens). */
  maxCost: bigint;
  /** The voucher it was served on; null when the node served it without payment. */
  voucherAmount: bigint | null;
  /** The node's receipt, verified; null when served without payment. */
  receipt: Receipt | null;
  /** Wei the request cost (the receipt's). */
  cost: bigint;
  /** Nodes tried before, and why they failed. */
  failovers: { node: Address; error: string }[];
}

/** A whole answer: OpenAI's object, with `openlora` (not enumerable: JSON.stringify gives OpenAI's body). */
export type PaidCompletion = Chunk & { readonly openlora: PaymentInfo };

export type ClientEvents = {
  [E in AttemptEvent as E["type"]]: Omit<E, "type">;
} & {
  failover: { node: NodeRef; error: NodeAttemptError };
};

/** Request fields the SDK reads; everything else goes to the node as it is. */
export interface CompletionParams {
  model: string;
  prompt: string | number[];
  max_tokens?: number;
  stream?: boolean;
  [field: string]: unknown;
}

export interface ChatCompletionParams {
  model: string;
  messages: { role: string; content: string }[];
  max_tokens?: number;
  stream?: boolean;
  [field: string]: unknown;
}

export interface RequestOptions {
  signal?: AbortSignal;
  /**
   * Only this node (operator address), whether or not it announces the adapter (a node that lacks it fetches it
   * from a peer first). No failover then.
   */
  node?: Address;
}

export class PayingClient extends Emitter<ClientEvents> {
  readonly payer: Address;
  readonly deployment: Deployment;
  readonly publicClient: ReadClient;
  /** Writes as the payer (deposits, withdrawals, claims). */
  readonly wallet: WalletClient<Transport, Chain | undefined, Account>;
  readonly state: PayerState;
  readonly spending: SpendingGuard;
  readonly discovery: Discovery;
  readonly listings: ListingResolver;
  /** A fetch that pays: give it to the official openai client (`new OpenAI({ baseURL, fetch: client.fetch })`). */
  readonly fetch: typeof fetch;
  readonly #o: PayingClientOptions;
  readonly #channels = new ChannelLocks();
  /** Nodes whose receipts did not hold: no more requests go there. */
  readonly #flagged = new Set<string>();
  readonly #deposits = new Map<string, { at: number; available: Promise<bigint> }>();
  #started = false;

  private constructor(options: PayingClientOptions, publicClient: ReadClient, chainId: number) {
    super();
    this.#o = options;
    const { deployment, account } = options;
    this.payer = getAddress(account.address);
    this.deployment = deployment;
    this.publicClient = publicClient;
    const transport = options.rpcUrl ? http(options.rpcUrl) : custom(publicClient);
    this.wallet = createWalletClient({ account, chain: publicClient.chain, transport });
    this.state = new PayerState(options.dataDir, {
      chainId,
      escrow: deployment.contracts.InferenceEscrow,
      payer: this.payer,
    });
    this.spending = new SpendingGuard(options.limits ?? {}, this.state);
    const chain = {
      client: publicClient,
      chainId,
      nodeRegistry: deployment.contracts.NodeRegistry,
      adapterRegistry: deployment.contracts.AdapterRegistry,
    };
    const d = options.discovery;
    if ((d.bootstrap?.length ?? 0) > 0 === (d.peersFrom?.length ?? 0) > 0) {
      throw new TypeError("discovery needs bootstrap multiaddrs or peersFrom node URLs (one of the two)");
    }
    this.discovery = d.bootstrap?.length
      ? new GossipDiscovery({
          chain,
          bootstrap: d.bootstrap,
          listen: d.listen,
          dataDir: join(options.dataDir, "p2p"),
          timings: d.timings,
        })
      : new HttpDiscovery({ chain, nodes: d.peersFrom ?? [], fetch: options.fetch });
    this.listings = new ListingResolver({
      client: publicClient,
      registry: deployment.contracts.AdapterRegistry,
      fromBlock: BigInt(deployment.blockNumber),
      aliases: options.aliases,
      aliasSources: async () => (await this.discovery.announcements()).map((a) => a.api).filter((api) => api !== ""),
      fetch: options.fetch,
    });
    this.fetch = paidFetch(this);
  }

  /** Checks the chain is the deployment's; call start() next. */
  static async create(options: PayingClientOptions): Promise<PayingClient> {
    if (!options.rpcUrl === !options.publicClient) throw new TypeError("give rpcUrl or publicClient (one of the two)");
    const publicClient = options.publicClient ?? createPublicClient({ transport: http(options.rpcUrl) });
    const chainId = await publicClient.getChainId();
    if (chainId !== options.deployment.chainId) {
      throw new TypeError(`the chain's id is ${chainId}, the deployment's ${options.deployment.chainId}`);
    }
    return new PayingClient(options, publicClient, chainId);
  }

  /** Starts discovery and reads the disputes of earlier runs (their nodes stay avoided). */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    for (const d of (await this.state.read()).disputes) this.#flagged.add(d.node.toLowerCase());
    await this.discovery.start();
  }

  async stop(): Promise<void> {
    this.#started = false;
    await this.discovery.stop();
  }

  /**
   * The nodes that would serve `model` now, best first: live, with an API, not disputed, within the price limit and
   * holding a deposit of the payer. First those that hold the adapter and announce the listing paid, then those
   * that hold it, each group by tier, queue and price (DESIGN, Routing); last the others, which fetch it from a
   * peer by its content hash first.
   */
  async route(model: string): Promise<{ target: PaymentTarget; candidates: Candidate[] }> {
    const target = await this.listings.resolve(model);
    const usable = (await this.discovery.announcements()).filter(
      (a) =>
        a.api !== "" &&
        !this.#flagged.has(a.operator.toLowerCase()) &&
        (this.#o.maxPricePerToken === undefined || a.pricePerToken <= this.#o.maxPricePerToken),
    );
    const listed = rankCandidates(usable, target.contentHash, target.listingId);
    const holders = rankCandidates(usable, target.contentHash);
    const ranked = [...listed, ...holders, ...rankCandidates(usable, null)].filter(
      (c, i, all) => all.findIndex((d) => d.peerId === c.peerId) === i,
    );
    const available = await Promise.all(ranked.map((c) => this.#available(c.announcement.operator)));
    const candidates = ranked.filter((_, i) => available[i] > 0n);
    if (ranked.length > 0 && candidates.length === 0) {
      throw new NoDepositError(
        `adapter ${target.contentHash}`,
        ranked.map((c) => c.announcement.operator),
      );
    }
    return { target, candidates };
  }

  /**
   * Waits until a node holding the adapter of `model` can serve it (gossip takes a moment after start), and returns
   * the candidates; throws after `timeoutMs`. For the first `hearMs`, what may only mean that the network has not
   * been heard in full yet is waited out: an alias no node knows, no deposit with the nodes known, only nodes that
   * would have to fetch the adapter (those are returned after `hearMs`).
   */
  async waitForRoute(model: string, timeoutMs = 30_000, hearMs = 6_000): Promise<Candidate[]> {
    const start = Date.now();
    const end = start + timeoutMs;
    const hearing = (): boolean => Date.now() < Math.min(end, start + hearMs);
    for (;;) {
      try {
        if ((await this.discovery.announcements()).length > 0) {
          const { candidates } = await this.route(model);
          if (candidates.some((c) => c.tier !== null) || (candidates.length > 0 && !hearing())) return candidates;
        }
      } catch (error) {
        const alias = !/^0x[0-9a-fA-F]{64}$/.test(model);
        const early = (error instanceof UnknownModelError && alias) || error instanceof NoDepositError;
        if (!(early && hearing())) throw error;
      }
      if (Date.now() > end) throw new NoRouteError(`model ${model} (waited ${timeoutMs} ms)`, []);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  createCompletion(
    params: CompletionParams & { stream: true },
    options?: RequestOptions,
  ): Promise<CompletionStream<PaymentInfo>>;
  createCompletion(params: CompletionParams, options?: RequestOptions): Promise<PaidCompletion>;
  createCompletion(
    params: CompletionParams,
    options: RequestOptions = {},
  ): Promise<PaidCompletion | CompletionStream<PaymentInfo>> {
    return this.#request("completion", params, options);
  }

  createChatCompletion(
    params: ChatCompletionParams & { stream: true },
    options?: RequestOptions,
  ): Promise<CompletionStream<PaymentInfo>>;
  createChatCompletion(params: ChatCompletionParams, options?: RequestOptions): Promise<PaidCompletion>;
  createChatCompletion(
    params: ChatCompletionParams,
    options: RequestOptions = {},
  ): Promise<PaidCompletion | CompletionStream<PaymentInfo>> {
    return this.#request("chat", params, options);
  }

  /** Streams any request body of an endpoint (what paidFetch and the gateway call). */
  stream(
    endpoint: Endpoint,
    body: Record<string, unknown>,
    options: RequestOptions = {},
  ): CompletionStream<PaymentInfo> {
    const abort = new AbortController();
    if (options.signal) {
      if (options.signal.aborted) abort.abort(options.signal.reason);
      else options.signal.addEventListener("abort", () => abort.abort(options.signal!.reason), { once: true });
    }
    return new CompletionStream(this.#run(endpoint, body, abort.signal, options.node), abort);
  }

  /** Channels, spending of the last day and disputes, as the payer's state file holds them; and the limits. */
  async status(): Promise<PayerStateData & { spending: SpendingView; stateFile: string }> {
    return { ...(await this.state.read()), spending: await this.spending.view(), stateFile: this.state.path };
  }

  async #request(
    endpoint: Endpoint,
    params: Record<string, unknown>,
    options: RequestOptions,
  ): Promise<PaidCompletion | CompletionStream<PaymentInfo>> {
    const stream = this.stream(endpoint, params, options);
    if (params.stream === true) return stream;
    const chunks: Chunk[] = [];
    try {
      for await (const chunk of stream) chunks.push(chunk);
    } catch (error) {
      if (error instanceof ReceiptError) error.completion = assembleCompletion(endpoint, chunks, String(params.model));
      throw error;
    }
    const completion = assembleCompletion(endpoint, chunks, String(params.model));
    Object.defineProperty(completion, "openlora", { value: await stream.payment, enumerable: false });
    return completion as PaidCompletion;
  }

  async *#run(
    endpoint: Endpoint,
    body: Record<string, unknown>,
    signal: AbortSignal,
    only?: Address,
  ): AsyncGenerator<Chunk, PaymentInfo> {
    if (!this.#started) throw new Error("call start() before sending requests");
    const routed = await this.route(String(body.model));
    const { target } = routed;
    const candidates = only
      ? routed.candidates.filter((c) => isAddressEqual(c.announcement.operator, only))
      : routed.candidates;
    const ctx: AttemptContext = {
      fetch: this.#o.fetch ?? fetch,
      payer: this.#o.account,
      escrow: { chainId: this.deployment.chainId, verifyingContract: this.deployment.contracts.InferenceEscrow },
      state: this.state,
      spending: this.spending,
      channels: this.#channels,
      maxPricePerToken: this.#o.maxPricePerToken,
      signal,
      emit: (event) => {
        if (event.type === "dispute") this.#flagged.add(event.node.operator.toLowerCase());
        const { type, ...rest } = event;
        this.emit(type, rest as never);
      },
    };
    const failovers: PaymentInfo["failovers"] = [];
    const attempts: { peerId: string; error: unknown }[] = [];
    const progress: AttemptProgress = { delivered: false };
    for (const candidate of candidates) {
      signal.throwIfAborted();
      try {
        const outcome = yield* attemptNode(ctx, candidate, { endpoint, body, target }, progress);
        return {
          model: target.model,
          listingId: target.listingId,
          contentHash: target.contentHash,
          node: outcome.node,
          pricePerToken: outcome.pricePerToken,
          maxCost: outcome.maxCost,
          voucherAmount: outcome.voucherAmount,
          receipt: outcome.receipt,
          cost: outcome.receipt?.cost ?? 0n,
          failovers,
        };
      } catch (error) {
        if (signal.aborted || !(error instanceof NodeAttemptError) || !error.retryable || progress.delivered)
          throw error;
        attempts.push({ peerId: candidate.peerId, error });
        failovers.push({ node: error.node, error: error.message });
        const a = candidate.announcement;
        this.emit("failover", { node: { operator: a.operator, peerId: a.peerId, api: a.api }, error });
      }
    }
    throw new NoRouteError(
      `adapter ${target.contentHash} (${target.model})${only ? ` at node ${only}` : ""}`,
      attempts,
    );
  }

  /** What the payer holds available for `node` in the escrow; read again after 2 s. */
  #available(node: Address): Promise<bigint> {
    const key = node.toLowerCase();
    const hit = this.#deposits.get(key);
    if (hit && Date.now() - hit.at < 2_000) return hit.available;
    const available = availableFor(this.publicClient, this.deployment.contracts.InferenceEscrow, this.payer, node);
    this.#deposits.set(key, { at: Date.now(), available });
    available.catch(() => this.#deposits.delete(key));
    return available;
  }
}
