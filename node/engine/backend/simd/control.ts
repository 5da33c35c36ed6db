// The control words the main thread and the workers share (one small SharedArrayBuffer of Int32).
// A pass: the main thread waits until the workers of the previous pass are back (FINISHED = their number), zeroes
// the counters and writes the pass generation into the wake word of each worker taking part (the others sleep
// on). Workers claim chunks of each phase and count every finished chunk in DONE;
// a phase that reads what an earlier one wrote waits until DONE reaches the chunks of all phases before it.
// So a worker the OS deschedules holds up the others only while it holds a claimed chunk: the phases it missed
// were done by the others, and it skips through them when it runs again. The first worker to see the last phase
// complete publishes the pass generation in COMPLETE, which the main thread awaits.

export const CTL = {
  /** Workers back from the current pass. */
  finished: 1,
  /** Chunks finished in the current pass, over all phases. */
  done: 2,
  /** Workers asleep in waitForChunks (a finished chunk notifies DONE only when some are). */
  sleepers: 3,
  /** Set to 1 to end the workers. */
  stop: 4,
  /** Set to 1 by a worker that failed; the others leave their wait and the pass fails. */
  failed: 5,
  /** Generation of the last pass whose every chunk is done. */
  complete: 6,
} as const;

export const CTL_INTS = 8;

/** Worker i's wake word: the generation of the last pass it was woken for (it waits until that changes). */
export function wakeWord(worker: number): number {
  return CTL_INTS + worker;
}

/**
 * Spins before sleeping: a phase boundary is usually a few microseconds away (the other worker finishing its
 * chunk), and a futex round trip costs more; a worker held up longer (its partner descheduled) gives its core up.
 */
const SPINS = 2000;
/** Sleeps are bounded (ms): a lost wake-up costs at most this. */
const SLEEP_MS = 2;

/** Thrown by a worker whose wait was abandoned because another worker failed. */
export class PassAbandoned extends Error {}

/** Counts one finished chunk; wakes the workers asleep on DONE, if any. */
export function chunkDone(ctl: Int32Array): void {
  Atomics.add(ctl, CTL.done, 1);
  if (Atomics.load(ctl, CTL.sleepers) > 0) Atomics.notify(ctl, CTL.done);
}

/** Waits until `target` chunks of the pass are done (every chunk of the phases so far). */
export function waitForChunks(ctl: Int32Array, target: number): void {
  let spins = 0;
  for (;;) {
    const done = Atomics.load(ctl, CTL.done);
    if (done >= target) return;
    if (Atomics.load(ctl, CTL.failed) !== 0) throw new PassAbandoned("another worker failed");
    if (++spins > SPINS) {
      // Sequentially consistent: a finisher either sees this sleeper and notifies, or its DONE bump is seen by
      // the wait's compare (which then returns at once).
      Atomics.add(ctl, CTL.sleepers, 1);
      Atomics.wait(ctl, CTL.done, done, SLEEP_MS);
      Atomics.sub(ctl, CTL.sleepers, 1);
    }
  }
}
