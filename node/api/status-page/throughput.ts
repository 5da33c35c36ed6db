// Generated tokens per second over the last minutes, for the status page's chart: the engine's step events are
// summed into one-second buckets held in a ring, so a page opened late still shows what was served before.
import type { Engine } from "../../engine/index.ts";

export interface ThroughputSeries {
  /** Start of the oldest bucket, ms since 1970. */
  start: number;
  intervalMs: number;
  /** Tokens generated in each bucket, oldest first (at most the ring's length, never before the history began); the
   * last bucket is the one in progress. */
  tokens: number[];
}

export class ThroughputHistory {
  readonly #intervalMs: number;
  readonly #buckets: Float64Array;
  readonly #now: () => number;
  /** Index (time / interval) of the newest bucket written; older ones in the ring are zeroed as time moves on. */
  #head: number;
  /** The first bucket: a series never reaches back before the history began (nothing was counted then). */
  readonly #first: number;
  readonly #off: () => void;

  constructor(engine: Pick<Engine, "on">, options: { seconds?: number; intervalMs?: number; now?: () => number } = {}) {
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#buckets = new Float64Array(Math.max(2, Math.ceil(((options.seconds ?? 300) * 1000) / this.#intervalMs)));
    this.#now = options.now ?? Date.now;
    this.#head = this.#index(this.#now());
    this.#first = this.#head;
    this.#off = engine.on("step", ({ sampled }) => this.add(sampled));
  }

  /** Counts `tokens` generated now. */
  add(tokens: number): void {
    const index = this.#advance();
    this.#buckets[index % this.#buckets.length] += tokens;
  }

  series(): ThroughputSeries {
    const head = this.#advance();
    const n = this.#buckets.length;
    const from = Math.max(head - n + 1, this.#first);
    const tokens: number[] = [];
    for (let i = from; i <= head; i++) tokens.push(this.#buckets[i % n]);
    return { start: from * this.#intervalMs, intervalMs: this.#intervalMs, tokens };
  }

  /** Stops following the engine. */
  close(): void {
    this.#off();
  }

  #index(ms: number): number {
    return Math.floor(ms / this.#intervalMs);
  }

  /** Moves the head to the current bucket, zeroing the buckets skipped over (no tokens then). */
  #advance(): number {
    const now = this.#index(this.#now());
    const n = this.#buckets.length;
    if (now > this.#head) {
      const from = Math.max(this.#head + 1, now - n + 1);
      for (let i = from; i <= now; i++) this.#buckets[i % n] = 0;
      this.#head = now;
    }
    return this.#head;
  }
}
