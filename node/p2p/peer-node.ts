// A whole OpenLoRA peer: the host, the verified peer table, the announcer (for a node with an operator wallet
// and an engine), adapter fetch and inference over libp2p, wired together. The api and cli layers start one of
// these; a client that only routes requests starts one without signer and engine.
import type { GossipsubOpts } from "@libp2p/gossipsub";
import type { PrivateKey } from "@libp2p/interface";
import type { Address, Chain, Hex, PublicClient, Transport } from "viem";
import { isAdapterId } from "../engine/adapter/id.ts";
import type { Engine } from "../engine/runtime/engine.ts";
import { AdapterFetcher, type FetchedAdapter } from "./adapter-fetcher.ts";
import { serveAdapters, type AdapterBytesSource } from "./adapter-protocol.ts";
import { ChainAdapterRegistry, type AdapterRegistryView, type ListingView } from "./adapter-registry.ts";
import { AnnouncementValidator } from "./announce-validator.ts";
import { ANNOUNCE_TOPIC, type AnnouncementLimits } from "./announcement.ts";
import type { AnnouncementDomain, AnnouncementSigner } from "./announcement-sig.ts";
import { Announcer, type NodeState } from "./announcer.ts";
import { engineAdapterSink, engineAdapterSource, engineNodeState } from "./engine-bridge.ts";
import { scoreParams, scoreThresholds } from "./gossip-scoring.ts";
import { P2pHost } from "./host.ts";
import { infer, inferStream, type InferOptions, type InferResult } from "./infer-client.ts";
import { InferError, type InferEvent, type InferRequest } from "./infer-frames.ts";
import { serveInference, type ServeInferenceOptions } from "./infer-server.ts";
import { PeerTable } from "./peer-table.ts";
import type { RateLimit } from "./rate-limiter.ts";
import { rankCandidates, withFailover, type Candidate } from "./routing.ts";
import { RegistryStakeOracle, type StakeOracle } from "./stake-oracle.ts";
import { ServedListings } from "./served-listings.ts";
import { TableKeeper } from "./table-keeper.ts";

export interface PeerNodeTimings {
  /** Periodic announcement. Default 5 s. */
  announceIntervalMs: number;
  /** Least time between two announcements. Default 250 ms. */
  minAnnounceIntervalMs: number;
  /** Peer table entry lifetime. Default 30 s. */
  entryTtlMs: number;
  /** Expiry sweep and stake re-check. Default 1 s. */
  keeperIntervalMs: number;
  /** Stake answers cached for (active / inactive). Defaults 30 s / 5 s. */
  stakeTtlMs: number;
  negativeStakeTtlMs: number;
  /** Oldest announcement ts accepted / future skew tolerated. Defaults 30 s / 10 s. */
  maxAgeMs: number;
  maxFutureMs: number;
  /** Ban for a peer that served bad adapter bytes (or reached its strikes). Default 10 min. */
  banMs: number;
  /** One peer's whole adapter transfer. Default 60 s. */
  fetchTimeoutMs: number;
  /** A peer that sends nothing for this long during a fetch has the next peer race it. Default 3 s. */
  fetchFirstByteMs: number;
  /** AdapterRegistry answers cached for. Default 30 s. */
  registryTtlMs: number;
}

export interface PeerNodeOptions {
  /** Holds peer.key. */
  dataDir: string;
  listen?: string[];
  announce?: string[];
  bootstrap?: string[];
  privateKey?: PrivateKey;
  /** The deployment: stakes and adapters are checked there, announcements are bound to it. */
  chain: {
    client: PublicClient<Transport, Chain | undefined>;
    chainId: number;
    nodeRegistry: Address;
    adapterRegistry: Address;
  };
  /** The operator's wallet. Without it the node announces nothing (a client). */
  signer?: AnnouncementSigner;
  /** The engine to serve. Without it the node serves nothing (a client). */
  engine?: Engine;
  /** What to announce instead of the engine's state (gossip-only nodes in tests and benchmarks). */
  state?: NodeState;
  /** Where adapter bytes are served from instead of the engine's disk tier. */
  adapterSource?: AdapterBytesSource;
  /** Our HTTP API URL, announced. */
  api?: string;
  pricePerToken?: bigint;
  timings?: Partial<PeerNodeTimings>;
  limits?: AnnouncementLimits;
  rate?: RateLimit;
  /** Per-relay budget of stake look-ups for operators never seen staked (AnnouncementValidatorOptions.lookups). */
  stakeLookups?: RateLimit;
  /** Require announcing peer ids to match NodeRegistry's binding. Default true. */
  checkPeerBinding?: boolean;
  /** Payment and accounting hooks of the infer protocol. */
  inference?: Pick<ServeInferenceOptions, "authorize" | "onFinished">;
  /** IPs exempt from gossipsub's colocation penalty (local networks: ["127.0.0.1"]). */
  colocationWhitelist?: string[];
  gossip?: Partial<GossipsubOpts>;
  /** Replace the chain-backed checks (tests, benchmarks). */
  oracle?: StakeOracle;
  registry?: AdapterRegistryView;
  /** Strikes (announced an adapter, then did not serve it) that ban a peer (PeerTableOptions.maxStrikes). */
  maxStrikes?: number;
  /** Which live listings of the adapters held are announced as served. Default: every one. */
  serveListing?: (listing: ListingView) => boolean;
}

export class PeerNode {
  readonly host: P2pHost;
  readonly table: PeerTable;
  readonly validator: AnnouncementValidator;
  readonly oracle: StakeOracle;
  readonly keeper: TableKeeper;
  readonly announcer: Announcer | null;
  readonly fetcher: AdapterFetcher | null;
  /** The listings announced for each adapter held. */
  readonly listings: ServedListings;
  readonly engine: Engine | null;
  readonly domain: AnnouncementDomain;
  #o: PeerNodeOptions;
  #started = false;

  private constructor(options: PeerNodeOptions, host: P2pHost, table: PeerTable) {
    this.#o = options;
    this.host = host;
    this.table = table;
    this.engine = options.engine ?? null;
    const t = options.timings ?? {};
    const { chain } = options;
    this.domain = { chainId: chain.chainId, verifyingContract: chain.nodeRegistry };
    this.oracle =
      options.oracle ??
      new RegistryStakeOracle({
        client: chain.client,
        registry: chain.nodeRegistry,
        ttlMs: t.stakeTtlMs,
        negativeTtlMs: t.negativeStakeTtlMs,
        checkPeerBinding: options.checkPeerBinding,
      });
    this.validator = new AnnouncementValidator({
      table,
      oracle: this.oracle,
      domain: this.domain,
      selfPeerId: host.peerId.toString(),
      limits: options.limits,
      maxAgeMs: t.maxAgeMs,
      maxFutureMs: t.maxFutureMs,
      rate: options.rate,
      lookups: options.stakeLookups,
    });
    this.keeper = new TableKeeper({ table, oracle: this.oracle, intervalMs: t.keeperIntervalMs });
    const engine = options.engine;
    const registry =
      options.registry ??
      new ChainAdapterRegistry({ client: chain.client, registry: chain.adapterRegistry, ttlMs: t.registryTtlMs });
    this.listings = new ServedListings({ registry, serve: options.serveListing, refreshMs: t.registryTtlMs });
    const held = options.state ?? (engine ? engineNodeState(engine) : null);
    const state = held && this.listings.attach(held);
    this.announcer =
      options.signer && state
        ? new Announcer({
            host,
            signer: options.signer,
            domain: this.domain,
            state,
            table,
            api: options.api,
            pricePerToken: options.pricePerToken,
            intervalMs: t.announceIntervalMs,
            minIntervalMs: t.minAnnounceIntervalMs,
            limits: options.limits,
          })
        : null;
    this.fetcher = engine
      ? new AdapterFetcher({
          host,
          table,
          sink: engineAdapterSink(engine),
          model: engine.model.config,
          maxRank: engine.limits.maxRank,
          registry,
          banMs: t.banMs,
          timeoutMs: t.fetchTimeoutMs,
          firstByteMs: t.fetchFirstByteMs,
        })
      : null;
  }

  static async create(options: PeerNodeOptions): Promise<PeerNode> {
    // The table exists before the host: gossipsub's scoring asks it who is banned.
    const table = new PeerTable({ ttlMs: options.timings?.entryTtlMs, maxStrikes: options.maxStrikes });
    const host = await P2pHost.create({
      dataDir: options.dataDir,
      listen: options.listen,
      announce: options.announce,
      bootstrap: options.bootstrap,
      privateKey: options.privateKey,
      gossip: {
        scoreParams: scoreParams({
          isBanned: (p) => table.isBanned(p),
          colocationWhitelist: options.colocationWhitelist,
        }),
        scoreThresholds,
        ...options.gossip,
      },
    });
    return new PeerNode(options, host, table);
  }

  get peerId(): string {
    return this.host.peerId.toString();
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const { host } = this;
    host.pubsub.topicValidators.set(ANNOUNCE_TOPIC, this.validator.topicValidator);
    const engine = this.engine;
    const source = this.#o.adapterSource ?? (engine ? engineAdapterSource(engine) : null);
    if (source) await serveAdapters(host, source);
    if (engine) {
      await serveInference(host, engine, {
        ...this.#o.inference,
        // A request for an adapter we lack fetches it from a peer first (registry-checked, hash-verified).
        prepare: async (request, context) => {
          if (!this.fetcher || !isAdapterId(request.adapterId)) return; // the engine judges the id
          try {
            await this.fetcher.ensure(request.adapterId, { signal: context.signal });
          } catch (error) {
            if (context.signal.aborted) throw error;
            throw new InferError("adapter_unavailable", (error as Error).message);
          }
        },
      });
    }
    await host.start();
    host.pubsub.subscribe(ANNOUNCE_TOPIC);
    this.keeper.start();
    this.announcer?.start();
  }

  /** Stops announcing, serving and listening. Idempotent; the engine stays open (its owner closes it). */
  async stop(): Promise<void> {
    await this.announcer?.stop();
    await this.keeper.stop();
    await this.host.stop();
  }

  /**
   * Live peers able to serve `adapterId` (null: the base model), for the listing `listingId` when given, best
   * first; this node included when it can.
   */
  candidates(adapterId: string | null, listingId?: string): Candidate[] {
    return rankCandidates(this.table.entries(), adapterId, listingId, (p) => this.table.strikes(p));
  }

  /** Makes an adapter present in our engine (for a listing when given), fetching it from a peer when needed. */
  ensureAdapter(id: string, options: { signal?: AbortSignal; listingId?: Hex } = {}): Promise<FetchedAdapter> {
    if (!this.fetcher) throw new Error("this node has no engine to hold adapters");
    return this.fetcher.ensure(id, options);
  }

  /**
   * Runs a request on the best remote peer for its adapter, and on the next one when that fails. This node
   * itself is skipped: a local request goes to the engine directly.
   */
  async infer(request: InferRequest, options: InferOptions = {}): Promise<InferResult> {
    const candidates = this.candidates(request.adapterId).filter((c) => c.peerId !== this.peerId);
    return withFailover(
      candidates,
      request.adapterId ?? "the base model",
      (c) => infer(this.host, { peerId: c.peerId, multiaddrs: c.announcement.multiaddrs }, request, options),
      {
        signal: options.signal,
        // A request that one node finds invalid is invalid everywhere: do not send it round the network.
        isFatal: (error) => error instanceof InferError && error.code === "invalid_request",
      },
    );
  }

  /** Streams a request from one chosen peer (no failover once tokens flow). */
  inferStream(candidate: Candidate, request: InferRequest, options: InferOptions = {}): AsyncGenerator<InferEvent> {
    return inferStream(
      this.host,
      { peerId: candidate.peerId, multiaddrs: candidate.announcement.multiaddrs },
      request,
      options,
    );
  }
}
