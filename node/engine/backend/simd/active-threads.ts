// How many of the pool's workers a pass wakes. The workers share the cores with whatever else runs, and under
// Linux's autogroup scheduling a process gets its share of the CPU whatever its thread count: when the workers
// get less CPU than their number, every phase waits on a worker descheduled mid-chunk, and fewer workers finish
// a pass sooner (measured on the 2-core machine under load: 1 worker 96 ms a decode step, 2 workers 175 ms).
// The measure is the CPU time the process used over the wall time of recent passes: the cores it really got.

/** Passes per decision, and passes shorter than this (ms) are not measured (timer and wake-up noise). */
const WINDOW = 4;
const MIN_PASS_MS = 2;
/** One worker fewer when the pool got fewer cores than its workers minus this. */
const DROP_MARGIN = 0.7;
/** One worker more when the pool used nearly all its workers' time (within this), after PROBE_AFTER windows. */
const RISE_MARGIN = 0.3;
const PROBE_AFTER = 4;

export class ActiveThreads {
  readonly max: number;
  #count: number;
  #cpuMs = 0;
  #wallMs = 0;
  #passes = 0;
  #windowsSinceChange = 0;

  constructor(max: number) {
    this.max = max;
    this.#count = max;
  }

  /** Workers the next pass wakes. */
  get count(): number {
    return this.#count;
  }

  /** Records one pass: the process's CPU time and the wall time it took. */
  record(cpuMs: number, wallMs: number): void {
    if (wallMs < MIN_PASS_MS) return;
    this.#cpuMs += cpuMs;
    this.#wallMs += wallMs;
    if (++this.#passes < WINDOW) return;
    const cores = this.#cpuMs / this.#wallMs;
    this.#cpuMs = 0;
    this.#wallMs = 0;
    this.#passes = 0;
    this.#windowsSinceChange++;
    if (this.#count > 1 && cores < this.#count - DROP_MARGIN) this.#change(-1);
    else if (this.#count < this.max && cores > this.#count - RISE_MARGIN && this.#windowsSinceChange >= PROBE_AFTER)
      this.#change(1);
  }

  #change(by: number): void {
    this.#count += by;
    this.#windowsSinceChange = 0;
  }
}
