// The simd pool's worker count follows the cores the process really gets (CPU time over wall time of passes).
import { describe, expect, it } from "vitest";
import { ActiveThreads } from "../../node/engine/backend/simd/active-threads.ts";

/** Records `passes` passes of `wallMs` each in which the process got `cores` cores. */
function run(active: ActiveThreads, passes: number, cores: number, wallMs = 20): void {
  for (let i = 0; i < passes; i++) active.record(cores * wallMs, wallMs);
}

describe("ActiveThreads", () => {
  it("starts with every worker and keeps them while they get their cores", () => {
    const active = new ActiveThreads(2);
    run(active, 40, 1.9);
    expect(active.count).toBe(2);
  });

  it("wakes one worker fewer when the pool gets fewer cores than its workers (a busy machine), down to one", () => {
    const active = new ActiveThreads(3);
    run(active, 4, 1.5);
    expect(active.count).toBe(2);
    run(active, 4, 0.45);
    expect(active.count).toBe(1);
    run(active, 40, 0.45);
    expect(active.count).toBe(1);
  });

  it("tries one more worker after a while when the ones it has use nearly all their time, and keeps it if it pays", () => {
    const active = new ActiveThreads(2);
    run(active, 4, 0.5);
    expect(active.count).toBe(1);
    run(active, 12, 0.95);
    expect(active.count).toBe(1); // not before PROBE_AFTER windows
    run(active, 4, 0.95);
    expect(active.count).toBe(2);
    run(active, 8, 1.8);
    expect(active.count).toBe(2);
  });

  it("does not measure passes too short to time", () => {
    const active = new ActiveThreads(2);
    run(active, 40, 0.1, 1);
    expect(active.count).toBe(2);
  });
});
