// The control words the main thread and the workers share (one small SharedArrayBuffer of Int32).
// A pass: the main thread bumps GO and notifies; every worker runs its share of the pass, meeting the others at
// barriers between dependent phases; each adds one to DONE, and the last one notifies the main thread.

export const CTL = {
  /** Generation of the pass to run; workers wait on it. */
  go: 0,
  /** Workers that finished the current pass. */
  done: 1,
  /** Workers arrived at the current barrier, and the barrier's generation. */
  arrived: 2,
  barrier: 3,
  /** Set to 1 to end the workers. */
  stop: 4,
  /** Set to 1 by a worker that failed; the others leave their barrier and the pass fails. */
  failed: 5,
} as const;

export const CTL_INTS = 8;

/** Spins before sleeping at a barrier: phases are short, and a futex wake costs more than a few spins. */
const SPINS = 4000;

/** Thrown by a worker whose barrier was abandoned because another worker failed. */
export class PassAbandoned extends Error {}

/** Waits until all `threads` workers arrive; the last one to arrive releases the others. */
export function barrier(ctl: Int32Array, threads: number): void {
  const generation = Atomics.load(ctl, CTL.barrier);
  if (Atomics.add(ctl, CTL.arrived, 1) === threads - 1) {
    Atomics.store(ctl, CTL.arrived, 0);
    Atomics.add(ctl, CTL.barrier, 1);
    Atomics.notify(ctl, CTL.barrier);
    return;
  }
  let spins = 0;
  while (Atomics.load(ctl, CTL.barrier) === generation) {
    if (Atomics.load(ctl, CTL.failed) !== 0) throw new PassAbandoned("another worker failed");
    if (++spins > SPINS) Atomics.wait(ctl, CTL.barrier, generation, 5);
  }
}
