// What AdapterRegistry says about an adapter before we fetch or use its bytes: registered, not retired, and its
// rank (which bounds the size we accept). Cached briefly: a fetch asks once, many fetches of one id share reads.
import { getContract, type Address, type Chain, type Hex, type PublicClient, type Transport, zeroAddress } from "viem";
import { adapterRegistryAbi } from "../chain/abi.ts";

export interface AdapterRecord {
  registered: boolean;
  retired: boolean;
  rank: number;
  owner: Address;
  baseModelId: Hex;
  uri: string;
}

export interface AdapterRegistryView {
  lookup(id: Hex): Promise<AdapterRecord>;
}

export interface ChainAdapterRegistryOptions {
  client: PublicClient<Transport, Chain | undefined>;
  registry: Address;
  /** How long an answer is trusted. Default 30 s (retiring takes effect within it). */
  ttlMs?: number;
  now?: () => number;
}

export class ChainAdapterRegistry implements AdapterRegistryView {
  #contract;
  #ttlMs: number;
  #now: () => number;
  #cache = new Map<Hex, { expiresAt: number; read: Promise<AdapterRecord> }>();

  constructor(options: ChainAdapterRegistryOptions) {
    this.#contract = getContract({ address: options.registry, abi: adapterRegistryAbi, client: options.client });
    this.#ttlMs = options.ttlMs ?? 30_000;
    this.#now = options.now ?? Date.now;
  }

  lookup(id: Hex): Promise<AdapterRecord> {
    const hit = this.#cache.get(id);
    if (hit && hit.expiresAt > this.#now()) return hit.read;
    const entry = { expiresAt: Number.POSITIVE_INFINITY, read: this.#read(id) };
    this.#cache.set(id, entry);
    if (this.#cache.size > 10_000) this.#cache.delete(this.#cache.keys().next().value!);
    entry.read.then(
      () => { entry.expiresAt = this.#now() + this.#ttlMs; },
      () => { if (this.#cache.get(id) === entry) this.#cache.delete(id); },
    );
    return entry.read;
  }

  async #read(id: Hex): Promise<AdapterRecord> {
    const a = await this.#contract.read.adapter([id]);
    return { registered: a.owner !== zeroAddress, retired: a.retired, rank: a.rank, owner: a.owner, baseModelId: a.baseModelId, uri: a.uri };
  }
}
