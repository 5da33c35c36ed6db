// Listings as the payment gate needs them: a voucher names a listing, and the listing must be live and name the
// content hash of the adapter the request runs. Cached (listings change rarely: a retirement takes effect within
// the time to live).
import { LRUCache } from "lru-cache";
import type { Address, Hex } from "viem";
import { readListing, type ListingView, type ReadClient } from "../../chain/index.ts";

/** A listing, or null when the registry has none with that id. */
type Entry = { listing: ListingView | null };

export class ListingCache {
  readonly #cache: LRUCache<Hex, Entry>;

  constructor(options: { client: ReadClient; registry: Address; ttlMs?: number; max?: number }) {
    this.#cache = new LRUCache<Hex, Entry>({
      max: options.max ?? 10_000,
      ttl: options.ttlMs ?? 30_000,
      fetchMethod: async (listingId) => ({ listing: await readListing(options.client, options.registry, listingId) }),
    });
  }

  async get(listingId: Hex): Promise<ListingView | null> {
    return (await this.#cache.fetch(listingId))?.listing ?? null;
  }
}
