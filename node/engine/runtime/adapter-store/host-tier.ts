import { LRUCache } from "lru-cache";
import type { LoraAdapter } from "../../adapter/lora.ts";

/**
 * The host tier: decoded adapters in memory, least recently used first out when their bytes exceed the
 * budget. Nothing here is pinned: a slot holds its own copy on the device, and a load in progress keeps its
 * adapter referenced until it is done, so evicting an entry only drops this tier's reference.
 */
export class HostTier {
  readonly budgetBytes: number;
  /** Sized by the canonical encoding's bytes; an adapter larger than the whole budget is not kept. */
  #entries: LRUCache<string, LoraAdapter> | null;

  /** `onEvict` hears of each adapter pushed out by the budget (not of those deleted on purpose). */
  constructor(budgetBytes: number, onEvict: (id: string) => void = () => {}) {
    if (!(budgetBytes >= 0)) throw new RangeError(`host budget must be >= 0 bytes, got ${budgetBytes}`);
    this.budgetBytes = budgetBytes;
    this.#entries =
      budgetBytes > 0
        ? new LRUCache({ maxSize: budgetBytes, dispose: (_adapter, id, reason) => reason === "evict" && onEvict(id) })
        : null;
  }

  get count(): number {
    return this.#entries?.size ?? 0;
  }

  get bytes(): number {
    return this.#entries?.calculatedSize ?? 0;
  }

  has(id: string): boolean {
    return this.#entries?.has(id) ?? false;
  }

  /** The adapter, marked most recently used; undefined when not here. */
  get(id: string): LoraAdapter | undefined {
    return this.#entries?.get(id);
  }

  /** Adds (or refreshes) an adapter, then evicts the least recently used ones beyond the budget. */
  put(id: string, adapter: LoraAdapter, bytes: number): void {
    if (!this.#entries) return;
    if (bytes > this.budgetBytes)
      this.#entries.delete(id); // would evict everything and still not fit
    else this.#entries.set(id, adapter, { size: bytes });
  }

  delete(id: string): void {
    this.#entries?.delete(id);
  }
}
