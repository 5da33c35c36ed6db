import type { BlockAllocator } from "../kv/block-allocator.ts";
import type { Sequence } from "./sequence.ts";
import type { SchedulerOptions } from "./types.ts";

/** Rows of one sequence in one step: input positions [from, to), and whether to sample after them. */
export interface Row {
  seq: Sequence;
  from: number;
  to: number;
  sample: boolean;
}

/** What the scheduler needs from the adapter store. */
export interface SlotSource {
  readySlot(id: string): number;
  isLoading(id: string): boolean;
  pin(id: string): number;
  unpin(slot: number): void;
  /** The queue's adapters, oldest request first: the store loads and prefetches them in that order. */
  want(ids: Iterable<string>): void;
}

export const DEFAULT_SCHEDULER: SchedulerOptions = { maxBatchTokens: 512, maxRunning: 64, agingSteps: 32 };

/**
 * Continuous batching over a paged KV pool. Each step: one decode row for every running sequence, then
 * prefill chunks of admitted sequences, then new admissions, all within a token budget. Admission needs KV
 * blocks for the whole input and the adapter ready in a slot (which it then pins); a request whose adapter is
 * still loading is skipped, not waited for. When a decode row finds the pool empty, the youngest running
 * sequence is preempted: its blocks and pin are freed and it waits again to be recomputed.
 * No starvation: a request that waited agingSteps steps (or was preempted) and still cannot be admitted stops
 * newer requests from being admitted ahead of it, so the resources it needs drain to it.
 */
export class Scheduler {
  readonly options: SchedulerOptions;
  /** Oldest first (by arrival order). */
  readonly waiting: Sequence[] = [];
  /** Oldest first. */
  readonly running: Sequence[] = [];
  steps = 0;
  preemptions = 0;
  #kv: BlockAllocator;
  #slots: SlotSource;
  /** Free blocks kept back at admission while sequences run, so decode rows rarely need to preempt. */
  #watermark: number;

  constructor(kv: BlockAllocator, slots: SlotSource, options: Partial<SchedulerOptions> = {}) {
    const maxBatchTokens = options.maxBatchTokens ?? DEFAULT_SCHEDULER.maxBatchTokens;
    this.options = { ...DEFAULT_SCHEDULER, maxRunning: Math.min(DEFAULT_SCHEDULER.maxRunning, maxBatchTokens), ...options };
    const { maxRunning, agingSteps } = this.options;
    if (!Number.isInteger(maxBatchTokens) || maxBatchTokens < 1) throw new RangeError(`maxBatchTokens must be a positive integer, got ${maxBatchTokens}`);
    if (!Number.isInteger(maxRunning) || maxRunning < 1 || maxRunning > maxBatchTokens) throw new RangeError(`maxRunning must be an integer in 1..maxBatchTokens, got ${maxRunning}`);
    if (!Number.isInteger(agingSteps) || agingSteps < 0) throw new RangeError(`agingSteps must be an integer >= 0, got ${agingSteps}`);
    this.#kv = kv;
    this.#slots = slots;
    this.#watermark = Math.floor(kv.numBlocks / 100);
  }

  enqueue(seq: Sequence): void {
    seq.state = "waiting";
    seq.queuedAtStep = this.steps;
    insertByOrder(this.waiting, seq);
  }

  /** Takes a sequence out wherever it is and frees its blocks and pin (finish, cancel, failure). */
  drop(seq: Sequence): void {
    remove(this.waiting, seq);
    remove(this.running, seq);
    this.#release(seq);
    seq.state = "finished";
  }

  /** Plans the next step; an empty list when nothing can run now. */
  plan(): Row[] {
    this.steps++;
    const rows: Row[] = [];
    const budget = (): number => this.options.maxBatchTokens - rows.reduce((n, r) => n + r.to - r.from, 0);

    // Decode rows first (they hold KV and a user is reading them), oldest first; then prefill chunks.
    for (const decode of [true, false]) {
      for (const seq of [...this.running]) {
        if (seq.state !== "running" || (seq.pending === 1) !== decode || budget() === 0) continue;
        const n = Math.min(seq.pending, budget());
        if (!this.#growOrPreempt(seq, seq.computed + n, rows)) continue;
        rows.push({ seq, from: seq.computed, to: seq.computed + n, sample: seq.computed + n === seq.inputLength });
      }
    }

    for (const seq of [...this.waiting]) {
      if (budget() === 0 || this.running.length >= this.options.maxRunning) break;
      const aged = seq.preemptions > 0 || this.steps - seq.queuedAtStep >= this.options.agingSteps;
      const adapterId = seq.request.adapterId;
      if (adapterId !== null && this.#slots.readySlot(adapterId) < 0) {
        if (aged && !this.#slots.isLoading(adapterId)) break; // let pins drain to it
        continue; // loading: others go ahead
      }
      const need = this.#kv.blocksFor(seq.inputLength);
      const reserve = this.running.length > 0 ? this.#watermark : 0;
      if (need + reserve > this.#kv.freeBlocks) {
        if (aged) break;
        continue;
      }
      this.#kv.grow(seq.blockTable, seq.inputLength);
      seq.slot = adapterId === null ? -1 : this.#slots.pin(adapterId);
      seq.state = "running";
      if (seq.admittedAt < 0) seq.admittedAt = performance.now();
      remove(this.waiting, seq);
      insertByOrder(this.running, seq);
      const n = Math.min(seq.pending, budget());
      rows.push({ seq, from: seq.computed, to: seq.computed + n, sample: seq.computed + n === seq.inputLength });
    }

    this.#slots.want(wantedAdapters(this.waiting));
    return rows;
  }

  /** Grows seq's blocks to `positions`, preempting the youngest running sequences while the pool is short. */
  #growOrPreempt(seq: Sequence, positions: number, rows: Row[]): boolean {
    while (!this.#kv.grow(seq.blockTable, positions)) {
      const victim = this.running[this.running.length - 1];
      this.#preempt(victim, rows);
      if (victim === seq) return false;
    }
    return true;
  }

  #preempt(seq: Sequence, rows: Row[]): void {
    const at = rows.findIndex((r) => r.seq === seq);
    if (at >= 0) rows.splice(at, 1);
    remove(this.running, seq);
    this.#release(seq);
    seq.computed = 0;
    seq.preemptions++;
    this.preemptions++;
    this.enqueue(seq);
  }

  #release(seq: Sequence): void {
    this.#kv.release(seq.blockTable);
    if (seq.slot >= 0) this.#slots.unpin(seq.slot);
    seq.slot = -1;
  }
}

function wantedAdapters(waiting: readonly Sequence[]): Set<string> {
  const ids = new Set<string>();
  for (const seq of waiting) if (seq.request.adapterId !== null) ids.add(seq.request.adapterId);
  return ids;
}

function insertByOrder(list: Sequence[], seq: Sequence): void {
  let i = list.length;
  while (i > 0 && list[i - 1].order > seq.order) i--;
  list.splice(i, 0, seq);
}

function remove(list: Sequence[], seq: Sequence): void {
  const i = list.indexOf(seq);
  if (i >= 0) list.splice(i, 1);
}
