// Where the client learns which nodes serve which adapters: either the gossip itself (a libp2p peer that joins
// through bootstrap peers, announces nothing and serves nothing), or any node's `GET /v1/peers`. Both paths put
// every announcement through the p2p layer's validator (operator's signature, active stake bound to the peer id,
// freshness, growing seq), so a node cannot hand the client forged or stale entries.
import { generateKeyPair } from "@libp2p/crypto/keys";
import type { Address } from "viem";
import {
  AnnouncementValidator,
  PeerNode,
  PeerTable,
  RegistryStakeOracle,
  type Announcement,
  type PeerNodeTimings,
} from "../p2p/index.ts";
import type { ReadClient } from "../chain/index.ts";

export interface Discovery {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Live, verified announcements. */
  announcements(): Promise<Announcement[]>;
}

/** The chain the announcements are checked against. */
export interface DiscoveryChain {
  client: ReadClient;
  chainId: number;
  nodeRegistry: Address;
  adapterRegistry: Address;
}

export interface GossipDiscoveryOptions {
  chain: DiscoveryChain;
  /** Multiaddrs ending in /p2p/<peer id> of nodes to join through. */
  bootstrap: string[];
  /** Where the client's libp2p host listens. Default 127.0.0.1 on a free port. */
  listen?: string[];
  /** Folder of the libp2p host (the client's identity is fresh each start, so nothing is kept there). */
  dataDir: string;
  timings?: Partial<PeerNodeTimings>;
  /** IPs exempt from gossipsub's colocation penalty (nodes on one machine: ["127.0.0.1"]). */
  colocationWhitelist?: string[];
}

/** A libp2p peer without signer or engine: it only listens to the announcements. */
export class GossipDiscovery implements Discovery {
  readonly #options: GossipDiscoveryOptions;
  #peer: PeerNode | null = null;

  constructor(options: GossipDiscoveryOptions) {
    this.#options = options;
  }

  /** The libp2p peer (after start). */
  get peer(): PeerNode | null {
    return this.#peer;
  }

  async start(): Promise<void> {
    if (this.#peer) return;
    const o = this.#options;
    // A fresh identity per start: two client processes of one user must not share a peer id.
    this.#peer = await PeerNode.create({
      dataDir: o.dataDir,
      privateKey: await generateKeyPair("Ed25519"),
      listen: o.listen ?? ["/ip4/127.0.0.1/tcp/0"],
      bootstrap: o.bootstrap,
      chain: o.chain,
      timings: o.timings,
      colocationWhitelist: o.colocationWhitelist ?? ["127.0.0.1"],
    });
    await this.#peer.start();
  }

  async stop(): Promise<void> {
    const peer = this.#peer;
    this.#peer = null;
    await peer?.stop();
  }

  async announcements(): Promise<Announcement[]> {
    return (this.#peer?.table.entries() ?? []).map((e) => e.announcement);
  }
}

export interface HttpDiscoveryOptions {
  chain: DiscoveryChain;
  /** Base URLs of nodes whose GET /v1/peers lists the network. */
  nodes: string[];
  /** How long one round of GET /v1/peers is reused. Default 2 s. */
  refreshMs?: number;
  /** Per node. Default 5 s. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** Asks nodes for their peer tables and keeps what the validator admits. */
export class HttpDiscovery implements Discovery {
  readonly #options: HttpDiscoveryOptions;
  readonly #table = new PeerTable();
  readonly #validator: AnnouncementValidator;
  #refreshed = 0;
  #refreshing: Promise<void> | null = null;

  constructor(options: HttpDiscoveryOptions) {
    this.#options = options;
    const { chain } = options;
    this.#validator = new AnnouncementValidator({
      table: this.#table,
      oracle: new RegistryStakeOracle({ client: chain.client, registry: chain.nodeRegistry }),
      domain: { chainId: chain.chainId, verifyingContract: chain.nodeRegistry },
      selfPeerId: "",
    });
  }

  async start(): Promise<void> {
    await this.#refresh();
  }

  async stop(): Promise<void> {}

  async announcements(): Promise<Announcement[]> {
    if (Date.now() - this.#refreshed > (this.#options.refreshMs ?? 2_000)) await this.#refresh();
    return this.#table.entries().map((e) => e.announcement);
  }

  #refresh(): Promise<void> {
    this.#refreshing ??= Promise.all(this.#options.nodes.map((url) => this.#poll(url))).then(() => {
      this.#refreshed = Date.now();
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #poll(url: string): Promise<void> {
    const fetchFn = this.#options.fetch ?? fetch;
    let body: { data?: { announcement?: unknown }[] };
    try {
      const response = await fetchFn(new URL("/v1/peers", url), {
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? 5_000),
      });
      if (!response.ok) return;
      body = (await response.json()) as typeof body;
    } catch {
      return; // an unreachable node lists nothing; the others may
    }
    for (const entry of Array.isArray(body.data) ? body.data : []) {
      const a = entry?.announcement as Partial<Announcement> | undefined;
      if (typeof a?.peerId !== "string") continue;
      // Over HTTP nobody proves who authored an entry: the operator's signature and its stake, bound to the
      // peer id the entry names, are what make it trustworthy; the entry names its own author.
      const bytes = new TextEncoder().encode(JSON.stringify(a));
      await this.#validator.admit(a.peerId, url, bytes);
    }
  }
}
