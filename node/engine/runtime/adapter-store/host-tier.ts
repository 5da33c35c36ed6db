import type { LoraAdapter } from "../../adapter/lora.ts";

/**
 * The host tier: decoded adapters in memory, least recently used first out when their bytes exceed the
 * budget. Nothing here is pinned: a slot holds its own copy on the device, and a load in progress keeps its
 * adapter referenced until it is done, so evicting an entry only drops this tier's reference.
 */
export class HostTier {
  readonly budgetBytes: number;
  /** Insertion order is recency order: the first entry is the least recently used. */
  #entries = new Map<string, { adapter: LoraAdapter; bytes: number }>();
  #bytes = 0;

  constructor(budgetBytes: number) {
    if (!(budgetBytes >= 0)) throw new RangeError(`host budget must be >= 0 bytes, got ${budgetBytes}`);
    this.budgetBytes = budgetBytes;
  }

  get count(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  /** The adapter, marked most recently used; undefined when not here. */
  get(id: string): LoraAdapter | undefined {
    const entry = this.#entries.get(id);
    if (!entry) return undefined;
    this.#entries.delete(id);
    this.#entries.set(id, entry);
    return entry.adapter;
  }

  /** Adds (or refreshes) an adapter, then evicts the least recently used ones beyond the budget. */
  put(id: string, adapter: LoraAdapter, bytes: number): void {
    this.delete(id);
    if (bytes > this.budgetBytes) return; // would evict everything and still not fit
    this.#entries.set(id, { adapter, bytes });
    this.#bytes += bytes;
    for (const [oldest, entry] of this.#entries) {
      if (this.#bytes <= this.budgetBytes) break;
      this.#entries.delete(oldest);
      this.#bytes -= entry.bytes;
    }
  }

  delete(id: string): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#entries.delete(id);
    this.#bytes -= entry.bytes;
  }
}
