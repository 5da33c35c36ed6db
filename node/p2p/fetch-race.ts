// Hedged attempts over ranked candidates: the first candidate starts; a failure starts the next at once; an
// attempt that shows no progress (no answer, no bytes) for `hedgeMs` has the next candidate start alongside it,
// up to `maxParallel` at once. The first success wins and the others are aborted. So a peer that announces an
// adapter and then stalls holds a fetch up for `hedgeMs`, not for the whole per-peer timeout.
import { NoRouteError, type Attempt } from "./routing.ts";

export interface RaceOptions<C> {
  /** Without progress for this long, the next candidate starts alongside. */
  hedgeMs: number;
  /** Attempts running at once, at most. Default 2. */
  maxParallel?: number;
  /** What is being fetched, for the error when every candidate failed. */
  what: string;
  /** A candidate's attempt failed (not aborted by the race). */
  onError?: (candidate: C, error: unknown) => void;
  /** A candidate that had stalled (made the race start another) was still stalled when another won. */
  onStalled?: (candidate: C) => void;
}

interface Running<C> {
  candidate: C;
  controller: AbortController;
  lastProgress: number;
  stalled: boolean;
}

/**
 * Runs `attempt(candidate, signal, progress)` over `candidates` in order as described above; an attempt calls
 * `progress()` whenever it gets something from its peer. Throws NoRouteError when every candidate failed.
 */
export function raceCandidates<C extends { peerId: string }, T>(
  candidates: readonly C[],
  attempt: (candidate: C, signal: AbortSignal, progress: () => void) => Promise<T>,
  options: RaceOptions<C>,
): Promise<T> {
  const maxParallel = options.maxParallel ?? 2;
  const attempts: Attempt[] = [];
  const running = new Set<Running<C>>();
  let next = 0;
  let done = false;
  return new Promise<T>((resolve, reject) => {
    const timer = setInterval(hedge, Math.max(10, Math.floor(options.hedgeMs / 4)));
    const finish = (): void => {
      done = true;
      clearInterval(timer);
      for (const r of running) {
        if (r.stalled) options.onStalled?.(r.candidate);
        r.controller.abort(new Error("another peer answered first"));
      }
      running.clear();
    };
    function start(): boolean {
      if (next >= candidates.length) return false;
      const r: Running<C> = {
        candidate: candidates[next++],
        controller: new AbortController(),
        lastProgress: performance.now(),
        stalled: false,
      };
      running.add(r);
      const progress = (): void => {
        r.lastProgress = performance.now();
        r.stalled = false;
      };
      attempt(r.candidate, r.controller.signal, progress).then(
        (value) => {
          if (done) return;
          running.delete(r);
          finish();
          resolve(value);
        },
        (error: unknown) => {
          if (done || r.controller.signal.aborted) return;
          running.delete(r);
          attempts.push({ peerId: r.candidate.peerId, error });
          options.onError?.(r.candidate, error);
          if (running.size > 0) return hedge(); // the next one joins now if the rest are stalled
          if (!start()) {
            finish();
            reject(new NoRouteError(options.what, attempts));
          }
        },
      );
      return true;
    }
    function hedge(): void {
      const now = performance.now();
      let stalled = 0;
      for (const r of running) {
        if (now - r.lastProgress >= options.hedgeMs) r.stalled = true;
        if (r.stalled) stalled++;
      }
      // Every running attempt is stalled and there is room: the next candidate joins the race.
      if (stalled === running.size && running.size < maxParallel) start();
    }
    if (!start()) {
      finish();
      reject(new NoRouteError(options.what, attempts));
    }
  });
}
