// What AdapterRegistry says before a node serves or fetches an adapter: a listing by id (registrant, content hash,
// size, rank, live or retired, attribution), and every listing of a content hash. A listing is what payers pay; the
// content hash is what peers send and verify. Answers are cached briefly: many announcements and fetches of one
// adapter share reads, and a retirement or a new listing shows within the TTL.
import type { Address, Hex } from "viem";
import { listingIdsOfContent, readListing, type ListingView } from "../chain/listing.ts";
import type { ReadClient } from "../chain/read-client.ts";
import { ReadCache } from "./read-cache.ts";

export type { ListingView };

export interface AdapterRegistryView {
  /** The listing `listingId`, or null when none has that id. */
  listing(listingId: Hex): Promise<ListingView | null>;
  /** Every listing of `contentHash` (any registrant, live or retired), oldest first. */
  listingsOf(contentHash: Hex): Promise<ListingView[]>;
}

export interface ChainAdapterRegistryOptions {
  client: ReadClient;
  registry: Address;
  /** The registry's deployment block: where the scan for a content hash's listings starts. Default 0. */
  fromBlock?: bigint;
  /** How long an answer is trusted. Default 30 s (a retirement takes effect within it). */
  ttlMs?: number;
  /** How long "no such listing" is trusted (a new registration shows within it). Default 5 s, at most ttlMs. */
  negativeTtlMs?: number;
  /** Keys remembered at most, per kind. Default 10 000. */
  max?: number;
  now?: () => number;
}

export class ChainAdapterRegistry implements AdapterRegistryView {
  #listings: ReadCache<Hex, { listing: ListingView | null }>;
  #ids: ReadCache<Hex, Hex[]>;

  constructor(options: ChainAdapterRegistryOptions) {
    const { client, registry } = options;
    const ttlMs = options.ttlMs ?? 30_000;
    const negativeTtlMs = Math.min(options.negativeTtlMs ?? 5_000, ttlMs);
    const max = options.max ?? 10_000;
    this.#listings = new ReadCache({
      read: async (id) => ({ listing: await readListing(client, registry, id) }),
      ttlMs: (r) => (r.listing ? ttlMs : negativeTtlMs),
      max,
      now: options.now,
    });
    this.#ids = new ReadCache({
      read: (hash) => listingIdsOfContent(client, registry, hash, options.fromBlock ?? 0n),
      ttlMs: (ids) => (ids.length > 0 ? ttlMs : negativeTtlMs),
      max,
      now: options.now,
    });
  }

  /** Chain reads done (the caches work when this stays low). */
  get reads(): number {
    return this.#listings.reads + this.#ids.reads;
  }

  async listing(listingId: Hex): Promise<ListingView | null> {
    return (await this.#listings.get(listingId.toLowerCase() as Hex)).listing;
  }

  async listingsOf(contentHash: Hex): Promise<ListingView[]> {
    const ids = await this.#ids.get(contentHash.toLowerCase() as Hex);
    const listings = await Promise.all(ids.map((id) => this.listing(id)));
    return listings.filter((l) => l !== null);
  }
}
