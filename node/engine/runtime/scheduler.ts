import { InvalidOptionError } from "../errors.ts";
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

export const DEFAULT_SCHEDULER: SchedulerOptions = { maxBatchTokens: 512, maxRunning: 64, agingSteps: 32, slowdown: 2 };

/**
 * Continuous batching over a paged KV pool. Each step: one decode row for every running sequence, then
 * prefill chunks of admitted sequences, then new admissions, all within a token budget. Admission needs KV
 * blocks for the whole input and the adapter ready in a slot (which it then pins); a request whose adapter is
 * still loading is skipped, not waited for. When a decode row finds the pool empty, the youngest running
 * sequence is preempted: its blocks and pin are freed and it waits again to be recomputed.
 * No starvation: a request that waited agingSteps steps (or was preempted) and still cannot be admitted stops
 * newer requests from being admitted ahead of it, so the resources it needs drain to it.
 * Fair among owners (a request's peer or payer): prefill chunks and admissions go owner by owner, the k-th
 * request of an owner that runs L sequences ranking L + k, so a newcomer comes before the 33rd request of an
 * owner that floods; and an owner below its share of the batch (maxRunning over the owners with work) that
 * finds no room takes it from the owner running the most, whose youngest sequence is preempted. With one
 * owner the order is the plain one: running prefills oldest first, then waiting requests oldest first.
 * A step's cost under competition: plan(tokenCap) with several owners feeds at most tokenCap tokens (at least 1),
 * shared out owner by owner, owners within their share of the batch first (planShared), but an owner left without a
 * turn for agingSteps steps before them all; running sequences left without a row keep their KV blocks.
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
  /** Owners served in shared steps, least recently first (owners never served rank before all of them). */
  #served: string[] = [];
  /** Owners with work in shared steps and no turn since: the step they started waiting at. */
  #unservedSince = new Map<string, number>();

  constructor(kv: BlockAllocator, slots: SlotSource, options: Partial<SchedulerOptions> = {}) {
    const maxBatchTokens = options.maxBatchTokens ?? DEFAULT_SCHEDULER.maxBatchTokens;
    this.options = {
      ...DEFAULT_SCHEDULER,
      maxRunning: Math.min(DEFAULT_SCHEDULER.maxRunning, maxBatchTokens),
      ...options,
    };
    const { maxRunning, agingSteps, slowdown } = this.options;
    if (!Number.isInteger(maxBatchTokens) || maxBatchTokens < 1)
      throw new RangeError(`maxBatchTokens must be a positive integer, got ${maxBatchTokens}`);
    if (!Number.isInteger(maxRunning) || maxRunning < 1 || maxRunning > maxBatchTokens)
      throw new RangeError(`maxRunning must be an integer in 1..maxBatchTokens, got ${maxRunning}`);
    if (!Number.isInteger(agingSteps) || agingSteps < 0)
      throw new RangeError(`agingSteps must be an integer >= 0, got ${agingSteps}`);
    if (typeof slowdown !== "number" || !(slowdown >= 1)) {
      const hint = "2 keeps a shared step within twice a lone one; Infinity turns the cap off";
      throw new InvalidOptionError("scheduler.slowdown", `must be a number >= 1, got ${slowdown}`, hint);
    }
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

  /**
   * Plans the next step; an empty list when nothing can run now. `tokenCap`: the most tokens the step should feed
   * (the engine's step cost model turns its slowdown into it); it applies only while several owners have work.
   */
  plan(tokenCap = Infinity): Row[] {
    this.steps++;
    const owners = new Set([...this.running, ...this.waiting].map((seq) => seq.owner)).size;
    const budget = Math.min(this.options.maxBatchTokens, Math.max(tokenCap, 1));
    const { rows, waiting } =
      owners > 1 && budget < this.options.maxBatchTokens ? this.#planShared(budget) : this.#planPlain();
    this.#slots.want(wantedAdapters(waiting.filter((seq) => seq.state === "waiting")));
    return rows;
  }

  /** Decode rows of every running sequence, then prefill chunks and admissions in the owners' fair order. */
  #planPlain(): { rows: Row[]; waiting: Sequence[] } {
    const rows: Row[] = [];
    const budget = (): number => this.options.maxBatchTokens - rows.reduce((n, r) => n + r.to - r.from, 0);

    // Decode rows first (they hold KV and a user is reading them), oldest first.
    for (const seq of [...this.running]) {
      if (seq.state !== "running" || seq.pending !== 1 || budget() === 0) continue;
      if (!this.#growOrPreempt(seq, seq.computed + 1, rows)) continue;
      rows.push({ seq, from: seq.computed, to: seq.computed + 1, sample: seq.computed + 1 === seq.inputLength });
    }

    // Then prefill chunks and admissions, in the owners' fair order.
    const load = ownerLoad(this.running);
    const waiting = fairOrder(this.running, this.waiting, load);
    for (const seq of waiting) {
      if (budget() === 0) break;
      if (seq.state === "running") {
        if (seq.pending <= 1) continue; // its decode row is planned (or it was preempted)
        const n = Math.min(seq.pending, budget());
        if (!this.#growOrPreempt(seq, seq.computed + n, rows)) continue;
        rows.push({ seq, from: seq.computed, to: seq.computed + n, sample: seq.computed + n === seq.inputLength });
        continue;
      }
      if (seq.state !== "waiting") continue;
      const admitted = this.#admit(seq, load, rows);
      if (admitted === "stop") break;
      if (admitted === "skip") continue;
      const n = Math.min(seq.pending, budget());
      rows.push({ seq, from: seq.computed, to: seq.computed + n, sample: seq.computed + n === seq.inputLength });
    }
    return { rows, waiting };
  }

  /**
   * A step of at most `budget` tokens shared among the owners with work. In rounds over the owners, each takes up
   * to budget / owners tokens (at least 1) from its own sequences, running ones then waiting ones, oldest first: a
   * decode row, a prefill chunk (which grows if the owner comes round again), an admission and its first chunk.
   * The first round goes to the owners within their share of the batch first, then to those above it (a flood), each
   * group least recently served first, so each owner's part is the same over steps and a cap below the number of
   * owners leaves the floods to take turns; an owner that waited agingSteps steps for a turn goes before them all;
   * the tokens left after it go to the owners running fewest sequences first (a client waiting on one request's
   * prompt before a flood's 30th stream). Rounds go on while tokens are left and someone takes them, so an owner
   * with little work leaves its part to the others. Running sequences left without a row keep their KV.
   */
  #planShared(budget: number): { rows: Row[]; waiting: Sequence[] } {
    const rows: Row[] = [];
    const left = (): number => budget - rows.reduce((n, r) => n + r.to - r.from, 0);
    const load = ownerLoad(this.running);
    const order = fairOrder(this.running, this.waiting, load);
    const queues = new Map<string, Sequence[]>();
    for (const seq of order) {
      const queue = queues.get(seq.owner);
      if (queue === undefined) queues.set(seq.owner, [seq]);
      else queue.push(seq);
    }
    const served = [...queues.keys()].sort((a, b) => this.#served.indexOf(a) - this.#served.indexOf(b));
    // The first round: owners whose requests (running and waiting) are within their share of the batch before those
    // asking more (a flood), each group least recently served first. So a client with a few requests has its rows in
    // every step however small the cap, and the floods take turns with what is left.
    // Before them, owners that had work and no turn for agingSteps shared steps: a flood still has a turn that often,
    // however many light owners keep arriving.
    const share = this.#share(queues.size);
    const asked = new Map([...queues].map(([owner, queue]) => [owner, queue.length]));
    for (const owner of queues.keys()) if (!this.#unservedSince.has(owner)) this.#unservedSince.set(owner, this.steps);
    const aged = (owner: string): boolean => this.steps - this.#unservedSince.get(owner)! >= this.options.agingSteps;
    const within = (owner: string): boolean => !aged(owner) && asked.get(owner)! <= share;
    const owners = [
      ...served.filter(aged),
      ...served.filter(within),
      ...served.filter((owner) => !aged(owner) && !within(owner)),
    ];
    // Later rounds: fewest running first; on equal loads, least recently served first (the sort is stable).
    const lightest = [...served].sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0));
    const quantum = Math.max(1, Math.floor(budget / owners.length));
    const admissions = { open: true };
    const turns: string[] = []; // by their last turn this step
    for (let round = 0, progress = true; progress && left() > 0; round++) {
      progress = false;
      for (const owner of round === 0 ? owners : lightest) {
        for (let turn = Math.min(quantum, left()); turn > 0;) {
          const n = this.#serveNext(queues.get(owner)!, turn, load, rows, admissions);
          if (n === 0) break;
          turn -= n;
          progress = true;
          remove(turns, owner);
          turns.push(owner);
        }
      }
    }
    // Owners not served keep their place at the front (and their wait); owners without work are forgotten.
    this.#served = [...this.#served.filter((owner) => queues.has(owner) && !turns.includes(owner)), ...turns];
    for (const owner of this.#unservedSince.keys()) {
      if (!queues.has(owner) || turns.includes(owner)) this.#unservedSince.delete(owner);
    }
    return { rows, waiting: order };
  }

  /**
   * Gives the first sequence of an owner's queue that can run up to `max` tokens of this step; the tokens given,
   * 0 when none of the queue can run. A sequence leaves the queue once its row reaches its next sample.
   */
  #serveNext(
    queue: Sequence[],
    max: number,
    load: Map<string, number>,
    rows: Row[],
    admissions: { open: boolean },
  ): number {
    while (queue.length > 0) {
      const seq = queue[0];
      if (seq.state === "running") {
        let row = rows.find((r) => r.seq === seq);
        const from = row === undefined ? seq.computed : row.to;
        const n = Math.min(seq.inputLength - from, max);
        if (n > 0 && this.#growOrPreempt(seq, from + n, rows)) {
          if (row === undefined) rows.push((row = { seq, from, to: from + n, sample: false }));
          else row.to += n;
          row.sample = row.to === seq.inputLength;
          if (row.sample) queue.shift();
          return n;
        }
      } else if (seq.state === "waiting" && admissions.open && seq.queuedAtStep !== this.steps) {
        // (queuedAtStep === steps: preempted during this plan, not taken back in the same step)
        const admitted = this.#admit(seq, load, rows);
        if (admitted === "admitted") continue; // now running: its first chunk on the next pass
        if (admitted === "stop") admissions.open = false;
      }
      queue.shift();
    }
    return 0;
  }

  /**
   * Admits a waiting sequence when its adapter is ready in a slot and its KV blocks fit (taking its owner's fair
   * share back if need be): "skip" when it cannot run now but newer ones may go ahead, "stop" when it aged and
   * newer ones must not take what it waits for (so the resources it needs drain to it).
   */
  #admit(seq: Sequence, load: Map<string, number>, rows: Row[]): "admitted" | "skip" | "stop" {
    const aged = seq.preemptions > 0 || this.steps - seq.queuedAtStep >= this.options.agingSteps;
    const adapterId = seq.request.adapterId;
    if (adapterId !== null && this.#slots.readySlot(adapterId) < 0) {
      // Loading: others go ahead; neither loading nor ready: let pins drain to it once it aged.
      return aged && !this.#slots.isLoading(adapterId) ? "stop" : "skip";
    }
    const need = this.#kv.blocksFor(seq.inputLength);
    const fits = (): boolean => {
      const reserve = this.running.length > 0 ? this.#watermark : 0;
      return this.running.length < this.options.maxRunning && need + reserve <= this.#kv.freeBlocks;
    };
    while (!fits() && this.#takeFairShare(seq, load, rows));
    if (!fits()) return aged && this.running.length < this.options.maxRunning ? "stop" : "skip";
    this.#kv.grow(seq.blockTable, seq.inputLength);
    seq.slot = adapterId === null ? -1 : this.#slots.pin(adapterId);
    seq.state = "running";
    if (seq.admittedAt < 0) seq.admittedAt = performance.now();
    remove(this.waiting, seq);
    insertByOrder(this.running, seq);
    load.set(seq.owner, (load.get(seq.owner) ?? 0) + 1);
    return "admitted";
  }

  /** An owner's share of the batch: maxRunning over the owners with work, at least 1. */
  #share(owners: number): number {
    return Math.max(1, Math.floor(this.options.maxRunning / owners));
  }

  /**
   * Makes room for `seq` when its owner runs fewer sequences than its share of the batch (maxRunning over the
   * owners with work, at least 1): preempts the youngest sequence of the owner running the most, if that owner
   * runs at least two more than seq's (so two owners never take rows back and forth). False when no one may yield.
   */
  #takeFairShare(seq: Sequence, load: Map<string, number>, rows: Row[]): boolean {
    const share = this.#share(new Set([...this.running, ...this.waiting].map((s) => s.owner)).size);
    const mine = load.get(seq.owner) ?? 0;
    if (mine >= share) return false;
    let heaviest: string | null = null;
    for (const [owner, running] of load) if (heaviest === null || running > load.get(heaviest)!) heaviest = owner;
    if (heaviest === null || load.get(heaviest)! < mine + 2) return false;
    const victim = this.running.findLast((s) => s.owner === heaviest)!;
    this.#preempt(victim, rows);
    load.set(heaviest, load.get(heaviest)! - 1);
    return true;
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

/** Running sequences per owner. */
function ownerLoad(running: readonly Sequence[]): Map<string, number> {
  const load = new Map<string, number>();
  for (const seq of running) load.set(seq.owner, (load.get(seq.owner) ?? 0) + 1);
  return load;
}

/**
 * Running and waiting sequences in the order their prefill and admission are served: an owner's running
 * sequences rank 0 .. L-1 and its waiting ones L, L+1, ... (L: how many it runs); lower ranks first, running
 * before waiting on equal ranks, then by arrival. One owner gets the plain order: running, then waiting, oldest first.
 */
function fairOrder(running: readonly Sequence[], waiting: readonly Sequence[], load: Map<string, number>): Sequence[] {
  const rank = new Map<Sequence, number>();
  const seen = new Map<string, number>();
  for (const seq of running) {
    const k = seen.get(seq.owner) ?? 0;
    rank.set(seq, k);
    seen.set(seq.owner, k + 1);
  }
  const queued = new Map<string, number>();
  for (const seq of waiting) {
    const k = queued.get(seq.owner) ?? 0;
    rank.set(seq, (load.get(seq.owner) ?? 0) + k);
    queued.set(seq.owner, k + 1);
  }
  // Array sort is stable: equal ranks keep running before waiting, each by arrival.
  return [...running, ...waiting].sort((a, b) => rank.get(a)! - rank.get(b)!);
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

function remove<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}
