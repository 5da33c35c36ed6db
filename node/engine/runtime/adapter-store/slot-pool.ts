/** One GPU adapter slot as the pool tracks it; the device holds the weights. */
interface Slot {
  adapterId: string | null;
  state: "empty" | "loading" | "ready";
  /** Running sequences using the slot; a pinned slot is never evicted. */
  pins: number;
  /** Tick of the last pin or load, for least-recently-used eviction. */
  lastUsed: number;
}

/**
 * The bookkeeping of the fixed pool of GPU adapter slots: which adapter each holds, pins, loads in flight,
 * and the choice of a slot to reuse (empty first, then the least recently used unpinned one).
 */
export class SlotPool {
  readonly size: number;
  #slots: Slot[];
  #tick = 0;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`slot count must be an integer >= 0, got ${size}`);
    this.size = size;
    this.#slots = Array.from({ length: size }, () => ({ adapterId: null, state: "empty", pins: 0, lastUsed: 0 }));
  }

  /** The slot holding a ready copy of the adapter, or -1. */
  readySlot(id: string): number {
    return this.#slots.findIndex((s) => s.adapterId === id && s.state === "ready");
  }

  /** The slot holding or loading the adapter, or -1. */
  slotOf(id: string): number {
    return this.#slots.findIndex((s) => s.adapterId === id);
  }

  isLoading(id: string): boolean {
    return this.#slots.some((s) => s.adapterId === id && s.state === "loading");
  }

  pins(slot: number): number {
    return this.#slots[slot].pins;
  }

  pin(slot: number): void {
    const s = this.#slots[slot];
    if (s.state !== "ready") throw new Error(`slot ${slot} is ${s.state}, it cannot be pinned`);
    s.pins++;
    s.lastUsed = ++this.#tick;
  }

  unpin(slot: number): void {
    const s = this.#slots[slot];
    if (s.pins <= 0) throw new Error(`slot ${slot} is not pinned`);
    s.pins--;
  }

  /** Slots not pinned (free for another adapter once their load, if any, is done). */
  get unpinned(): number {
    return this.#slots.filter((s) => s.pins === 0).length;
  }

  /**
   * A slot that may take another adapter: not pinned, not loading, and not holding one of `keep`; an empty
   * one first, else the least recently used. -1 when none.
   */
  victim(keep: ReadonlySet<string>): number {
    let best = -1;
    this.#slots.forEach((s, i) => {
      if (s.pins > 0 || s.state === "loading" || (s.adapterId !== null && keep.has(s.adapterId))) return;
      if (best < 0) {
        best = i;
        return;
      }
      const b = this.#slots[best];
      if (b.state !== "empty" && (s.state === "empty" || s.lastUsed < b.lastUsed)) best = i;
    });
    return best;
  }

  beginLoad(slot: number, id: string): void {
    const s = this.#slots[slot];
    if (s.pins > 0 || s.state === "loading") throw new Error(`slot ${slot} is busy`);
    s.adapterId = id;
    s.state = "loading";
    s.lastUsed = ++this.#tick;
  }

  /** Ends a load: ready on success, empty on failure. */
  endLoad(slot: number, ok: boolean): void {
    const s = this.#slots[slot];
    s.state = ok ? "ready" : "empty";
    if (!ok) s.adapterId = null;
  }

  /** Marks an unpinned slot empty (its device contents are left as they are, unused). */
  clear(slot: number): void {
    const s = this.#slots[slot];
    if (s.pins > 0 || s.state === "loading") throw new Error(`slot ${slot} is busy`);
    s.adapterId = null;
    s.state = "empty";
  }

  entries(): { slot: number; adapterId: string | null; pins: number; state: Slot["state"] }[] {
    return this.#slots.map((s, slot) => ({ slot, adapterId: s.adapterId, pins: s.pins, state: s.state }));
  }
}
