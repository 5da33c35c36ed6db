// Which listings this node serves for each adapter it holds, attached to what it announces. The engine knows
// content hashes; payers pay listings. A node serves the live listings of the content it holds: all of them by
// default, or those an operator's filter keeps (say, only some registrants'). They are read from the registry in
// the background: an adapter is announced at once, its listings follow in a fresh announcement as soon as they
// are read, and a retired listing leaves the announcements within the refresh period (no new use).
import type { Hex } from "viem";
import type { AdapterRegistryView, ListingView } from "./adapter-registry.ts";
import type { NodeState } from "./announcer.ts";

export interface ServedListingsOptions {
  registry: AdapterRegistryView;
  /** Which live listings of held content to serve. Default: every one. */
  serve?: (listing: ListingView) => boolean;
  /** How long a content hash's listings are used before they are read again. Default 30 s. */
  refreshMs?: number;
  /** A failed read (the old answer stays in use and the read is tried again at the next announcement). */
  onError?: (error: unknown) => void;
  now?: () => number;
}

export class ServedListings {
  #o: ServedListingsOptions;
  #now: () => number;
  #known = new Map<Hex, { ids: Hex[]; at: number }>();
  #reading = new Map<Hex, Promise<Hex[]>>();
  #listeners = new Set<() => void>();

  constructor(options: ServedListingsOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** The listing ids served for `contentHash`, as last read (empty until read). */
  of(contentHash: Hex): Hex[] {
    return this.#known.get(contentHash)?.ids ?? [];
  }

  /**
   * `state` with each adapter's served listings attached (an adapter that already names its listings keeps them);
   * its onChange also fires when the listings read for a held adapter change.
   */
  attach(state: NodeState): NodeState {
    return {
      adapters: () => state.adapters().map((a) => (a.listings ? a : { ...a, listings: this.#served(a.id) })),
      load: () => state.load(),
      onChange: (listener) => {
        const offState = state.onChange?.(listener);
        this.#listeners.add(listener);
        return () => {
          offState?.();
          this.#listeners.delete(listener);
        };
      },
    };
  }

  /** Reads the listings of `contentHash` now; concurrent calls share one read. */
  refresh(contentHash: Hex): Promise<Hex[]> {
    let reading = this.#reading.get(contentHash);
    if (!reading) {
      reading = this.#read(contentHash).finally(() => this.#reading.delete(contentHash));
      this.#reading.set(contentHash, reading);
    }
    return reading;
  }

  #served(contentHash: Hex): Hex[] {
    const known = this.#known.get(contentHash);
    if (!known || this.#now() - known.at >= (this.#o.refreshMs ?? 30_000)) {
      this.refresh(contentHash).catch((error: unknown) => this.#o.onError?.(error));
    }
    return known?.ids ?? [];
  }

  async #read(contentHash: Hex): Promise<Hex[]> {
    const serve = this.#o.serve ?? (() => true);
    const listings = await this.#o.registry.listingsOf(contentHash);
    const ids = listings.filter((l) => l.live && serve(l)).map((l) => l.listingId.toLowerCase() as Hex);
    const before = this.#known.get(contentHash)?.ids ?? [];
    this.#known.set(contentHash, { ids, at: this.#now() });
    if (ids.join() !== before.join()) for (const listener of this.#listeners) listener();
    return ids;
  }
}
