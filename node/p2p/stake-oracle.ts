// Is this operator allowed to announce? NodeRegistry says: its stake is active, and (by default) the peer id it
// bound when staking is the one announcing. Chain reads cost a round trip, announcements arrive every few
// seconds from every node: answers are cached per operator for a TTL (shorter for "no", so a node that just
// staked joins quickly), and concurrent questions about one operator share one read.
import { peerIdFromString } from "@libp2p/peer-id";
import { bytesToHex, getContract, type Address, type Chain, type Hex, type PublicClient, type Transport } from "viem";
import { nodeRegistryAbi } from "../chain/generated/abi.ts";
import { ReadCache } from "./read-cache.ts";

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

interface StakeRead {
  active: boolean;
  boundPeerId: Hex;
}

export class RegistryStakeOracle implements StakeOracle {
  #registry;
  #checkPeerBinding: boolean;
  #cache: ReadCache<Address, StakeRead>;

  constructor(options: RegistryStakeOracleOptions) {
    this.#registry = getContract({ address: options.registry, abi: nodeRegistryAbi, client: options.client });
    this.#checkPeerBinding = options.checkPeerBinding ?? true;
    const ttlMs = options.ttlMs ?? 30_000;
    const negativeTtlMs = options.negativeTtlMs ?? 5_000;
    this.#cache = new ReadCache({
      read: (operator) => this.#read(operator),
      ttlMs: (r) => (r.active ? ttlMs : negativeTtlMs),
      max: options.maxEntries ?? 10_000,
      now: options.now,
    });
  }

  /** Chain reads done (tests and metrics: the cache works when this stays low). */
  get reads(): number {
    return this.#cache.reads;
  }

  async check(operator: Address, peerId: string): Promise<StakeStatus> {
    const { active, boundPeerId } = await this.#cache.get(operator);
    if (!active) return "inactive";
    if (this.#checkPeerBinding && boundPeerId.toLowerCase() !== peerIdBytesHex(peerId)) return "peer-not-bound";
    return "active";
  }

  /** Forgets cached answers (one operator, or all): the next check reads the chain. */
  invalidate(operator?: Address): void {
    this.#cache.invalidate(operator);
  }

  async #read(operator: Address): Promise<StakeRead> {
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
