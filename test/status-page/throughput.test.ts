// The status page's tokens/s history on an injected clock: one-second buckets of the engine's sampled tokens,
// silent seconds as zeros, a ring that forgets what is older than its length, nothing from before it began.
import { describe, expect, it } from "vitest";
import { Emitter } from "../../node/engine/emitter.ts";
import type { EngineEvents } from "../../node/engine/runtime/types.ts";
import { ThroughputHistory } from "../../node/api/status-page/throughput.ts";

/** The engine's events without an engine: only "step" matters here. */
class Steps extends Emitter<EngineEvents> {
  step(sampled: number): void {
    this.emit("step", { step: 0, rows: sampled, tokens: sampled, sampled, ms: 1 });
  }
}

function setup(seconds: number) {
  let now = 10_500; // half-way through second 10
  const engine = new Steps();
  const history = new ThroughputHistory(engine, { seconds, now: () => now });
  const step = (sampled: number): void => engine.step(sampled);
  return { history, step, advance: (ms: number) => void (now += ms) };
}

describe("ThroughputHistory", () => {
  it("sums sampled tokens per second from its start, with zeros for silent seconds", () => {
    const { history, step, advance } = setup(60);
    step(3);
    step(4);
    advance(1000);
    advance(1000);
    step(5);
    expect(history.series()).toEqual({ start: 10_000, intervalMs: 1000, tokens: [7, 0, 5] });
  });

  it("keeps only the last `seconds` buckets, and a long silence clears them", () => {
    const { history, step, advance } = setup(3);
    for (const n of [1, 2, 3, 4, 5]) {
      step(n);
      advance(1000);
    }
    expect(history.series()).toEqual({ start: 13_000, intervalMs: 1000, tokens: [4, 5, 0] });
    advance(10_000);
    expect(history.series().tokens).toEqual([0, 0, 0]);
  });

  it("stops counting when closed", () => {
    const { history, step } = setup(10);
    step(2);
    history.close();
    step(9);
    expect(history.series().tokens).toEqual([2]);
  });
});
