// Is this operator allowed to announce? NodeRegistry says: its stake is active, and (by default) the peer id it
// bound when staking is the one announcing. Chain reads cost a round trip, announcements arrive every few
// seconds from every node: answers are cached per operator for a TTL (shorter for "no", so a node that just
// staked joins quickly), and concurrent questions about one operator share one read.
import { peerIdFromString } from "@libp2p/peer-id";
import { bytesToHex, getContract, type Address, type Chain, type Hex, type PublicClient, type Transport } from "viem";
import { nodeRegistryAbi } from "../chain/abi.ts";

export type StakeStatus = "active" | "inactive" | "peer-not-bound";

export interface StakeOracle {
  /** Throws when the chain cannot be read (the caller drops the announcement as "chain-error"). */
  check(operator: Address, peerId: string): Promise<StakeStatus>;
}

export interface RegistryStakeOracleOptions {
  client: PublicClient<Transport, Chain | undefined>;
  registry: Address;
  /** How long an "active" answer is trusted. Default 30 s. */
  ttlMs?: number;
  /** How long an "inactive" answer is trusted. Default 5 s. */
  negativeTtlMs?: number;
  /** Require the announcing peer id to be the one bound in NodeRegistry.stake(). Default true. */
  checkPeerBinding?: boolean;
  /** Operators remembered at most (oldest forgotten first). Default 10 000. */
  maxEntries?: number;
  now?: () => number;
}

interface Cached {
  expiresAt: number;
  read: Promise<{ active: boolean; boundPeerId: Hex }>;
}

export class RegistryStakeOracle implements StakeOracle {
  #registry;
  #ttlMs: number;
  #negativeTtlMs: number;
  #checkPeerBinding: boolean;
  #maxEntries: number;
  #now: () => number;
  #cache = new Map<Address, Cached>();
  /** Chain reads done (tests and metrics: the cache works when this stays low). */
  reads = 0;

  constructor(options: RegistryStakeOracleOptions) {
    this.#registry = getContract({ address: options.registry, abi: nodeRegistryAbi, client: options.client });
    this.#ttlMs = options.ttlMs ?? 30_000;
    this.#negativeTtlMs = options.negativeTtlMs ?? 5_000;
    this.#checkPeerBinding = options.checkPeerBinding ?? true;
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  async check(operator: Address, peerId: string): Promise<StakeStatus> {
    const { active, boundPeerId } = await this.#lookup(operator);
    if (!active) return "inactive";
    if (this.#checkPeerBinding && boundPeerId.toLowerCase() !== peerIdBytesHex(peerId)) return "peer-not-bound";
    return "active";
  }

  /** Forgets cached answers (one operator, or all): the next check reads the chain. */
  invalidate(operator?: Address): void {
    if (operator) this.#cache.delete(operator);
    else this.#cache.clear();
  }

  #lookup(operator: Address): Promise<{ active: boolean; boundPeerId: Hex }> {
    const now = this.#now();
    const hit = this.#cache.get(operator);
    if (hit && hit.expiresAt > now) return hit.read;
    const entry: Cached = { expiresAt: Number.POSITIVE_INFINITY, read: this.#read(operator) };
    this.#cache.delete(operator); // re-insert: Map order is the eviction order
    this.#cache.set(operator, entry);
    while (this.#cache.size > this.#maxEntries) this.#cache.delete(this.#cache.keys().next().value!);
    entry.read.then(
      (r) => { entry.expiresAt = this.#now() + (r.active ? this.#ttlMs : this.#negativeTtlMs); },
      () => { if (this.#cache.get(operator) === entry) this.#cache.delete(operator); }, // errors are not cached
    );
    return entry.read;
  }

  async #read(operator: Address): Promise<{ active: boolean; boundPeerId: Hex }> {
    this.reads++;
    const [active, info] = await Promise.all([
      this.#registry.read.isActive([operator]),
      this.#checkPeerBinding ? this.#registry.read.nodeOf([operator]) : Promise.resolve({ peerId: "0x" as Hex }),
    ]);
    return { active, boundPeerId: info.peerId };
  }
}

/** The bytes NodeRegistry.stake() takes for a peer id: its multihash, as lowercase hex. */
export function peerIdBytesHex(peerId: string): Hex {
  return bytesToHex(peerIdFromString(peerId).toMultihash().bytes);
}
