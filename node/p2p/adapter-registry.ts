// What AdapterRegistry says about an adapter before we fetch or use its bytes: registered, not retired, and its
// rank (which bounds the size we accept). Cached briefly: a fetch asks once, many fetches of one id share reads.
import { type Address, type Chain, type Hex, type PublicClient, type Transport, zeroAddress, zeroHash } from "viem";
import { listingIdsOfContent, readListing } from "../chain/listing.ts";
import { ReadCache } from "./read-cache.ts";

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
  #client: PublicClient<Transport, Chain | undefined>;
  #registry: Address;
  #cache: ReadCache<Hex, AdapterRecord>;

  constructor(options: ChainAdapterRegistryOptions) {
    this.#client = options.client;
    this.#registry = options.registry;
    const ttlMs = options.ttlMs ?? 30_000;
    this.#cache = new ReadCache({ read: (id) => this.#read(id), ttlMs: () => ttlMs, max: 10_000, now: options.now });
  }

  lookup(id: Hex): Promise<AdapterRecord> {
    return this.#cache.get(id);
  }

  // Until announcements carry listing ids: the content hash counts as registered when any registrant lists it,
  // and as retired when every listing of it is.
  async #read(id: Hex): Promise<AdapterRecord> {
    const ids = await listingIdsOfContent(this.#client, this.#registry, id);
    const reads = await Promise.all(ids.map((l) => readListing(this.#client, this.#registry, l)));
    const listings = reads.filter((l) => l !== null);
    const a = listings.find((l) => l.live) ?? listings[0];
    if (!a) return { registered: false, retired: false, rank: 0, owner: zeroAddress, baseModelId: zeroHash, uri: "" };
    const { retired, rank, registrant: owner, baseModelId, uri } = a;
    return { registered: true, retired, rank, owner, baseModelId, uri };
  }
}
