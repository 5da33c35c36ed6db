// Issue 13, "the honest peer's latency within 2x of an idle node's" in time, not only in steps: the scheduler with
// the token cap the step cost model computes, on a simulated backend whose step costs a known line in its tokens,
// timed by a fake clock (the sum of the simulated steps): no sleeps, no wall clock. Backends: cpu-like (a step
// costs about its tokens), gpu-like (a step costs about the same at any size), and one whose rows cost their
// context too (attention), where a flood's rows of long contexts cost more than a client's short one.
import { describe, expect, it } from "vitest";
import type { Row } from "../../node/engine/runtime/scheduler.ts";
import { StepCostModel } from "../../node/engine/runtime/step-cost.ts";
import { setup } from "../engine/scheduler-helpers.ts";

const SLOWDOWN = 2;
const tokensOf = (rows: readonly Row[]) => rows.reduce((n, r) => n + r.to - r.from, 0);

/** What a simulated step costs: fixed + per token x tokens + per position x (each token's attended positions). */
interface Costs {
  fixedMs: number;
  perTokenMs: number;
  perPositionMs?: number;
}

function stepMs(costs: Costs, rows: readonly Row[]): number {
  let positions = 0;
  for (const r of rows) for (let p = r.from; p < r.to; p++) positions += p + 1;
  return costs.fixedMs + costs.perTokenMs * tokensOf(rows) + (costs.perPositionMs ?? 0) * positions;
}

/**
 * One honest request (a 1-token prompt, 16 tokens) idle, then under 3 owners x 32 streams of `floodPrompt` tokens,
 * with each step's cap from the cost model: its latency on the fake clock each time, the most a step cost while it
 * ran, and whether it had a row in every step.
 */
function simulate(costs: Costs, floodPrompt = 8) {
  const { scheduler, add, step } = setup(4096, 16);
  const model = new StepCostModel();
  let clock = 0;
  const run = (): Row[] => {
    const rows = step(model.tokenCap(SLOWDOWN));
    const ms = stepMs(costs, rows);
    clock += ms;
    model.observe(tokensOf(rows), ms);
    return rows;
  };
  const honestRun = () => {
    const honest = add(1, { owner: "alice" });
    const started = clock;
    let everyStep = true;
    let costliest = 0;
    while (honest.generated.length < 16) {
      const before = clock;
      everyStep &&= run().some((r) => r.seq === honest);
      costliest = Math.max(costliest, clock - before);
    }
    scheduler.drop(honest);
    return { ms: clock - started, everyStep, costliest };
  };
  honestRun(); // warm-up: the model sees lone steps
  const idle = honestRun();
  for (let i = 0; i < 96; i++) add(floodPrompt, { owner: `sybil-${i % 3}` });
  for (let i = 0; i < 20; i++) run(); // the flood is admitted and decoding
  const attacked = honestRun();
  return { idle, attacked, loneStepMs: costs.fixedMs + costs.perTokenMs };
}

describe("honest latency in time under 3 owners x 32 streams, with the step cost cap (item 3)", () => {
  it("on a cpu-like backend: a cap of 2 tokens, the honest request first in each step beside the floods' turns", () => {
    // A step costs about its tokens, so the cap is floor(2 + 0.2 / 0.45) = 2 tokens: the honest owner (one request,
    // within its share) has one, the three floods (32 requests each, above theirs) take the other in turn.
    const { idle, attacked, loneStepMs } = simulate({ fixedMs: 0.2, perTokenMs: 0.45 });
    expect(attacked.everyStep).toBe(true);
    expect(attacked.costliest).toBeCloseTo(0.2 + 2 * 0.45, 9);
    expect(attacked.costliest).toBeLessThanOrEqual(SLOWDOWN * loneStepMs);
    expect(attacked.ms).toBeLessThanOrEqual(SLOWDOWN * idle.ms + 1e-9);
  });

  it("on a backend whose fixed cost is larger: the cap leaves room for every owner and the 2x holds", () => {
    const { idle, attacked, loneStepMs } = simulate({ fixedMs: 1, perTokenMs: 0.25 });
    expect(attacked.everyStep).toBe(true);
    expect(attacked.costliest).toBeLessThanOrEqual(SLOWDOWN * loneStepMs + 1e-9);
    expect(attacked.ms).toBeLessThanOrEqual(SLOWDOWN * idle.ms + 1e-9);
  });

  it("on a gpu-like backend: the same, with far larger steps allowed (the flood keeps its throughput)", () => {
    const { idle, attacked, loneStepMs } = simulate({ fixedMs: 3, perTokenMs: 0.01 });
    expect(attacked.everyStep).toBe(true);
    expect(attacked.costliest).toBeLessThanOrEqual(SLOWDOWN * loneStepMs + 1e-9);
    expect(attacked.ms).toBeLessThanOrEqual(SLOWDOWN * idle.ms + 1e-9);
    expect(attacked.costliest).toBeGreaterThan(3 + 0.01 * 60); // the whole batch of 64 rows fits the cap
  });

  it("on a backend whose rows cost their context: a flood's long rows do not pass for a lone step", () => {
    // A row costs 0.004 ms per position it attends to. The honest request's contexts are 1-16 positions (a lone step
    // about 0.44 ms); the flood's prompts are 200 tokens, so one of its 1-token steps costs about 1.2 ms, 2.8x. Taken
    // as "a lone step", those would let the honest request's steps hold a flood row as well: 3.4x its lone step.
    const { idle, attacked } = simulate({ fixedMs: 0.2, perTokenMs: 0.2, perPositionMs: 0.004 }, 200);
    expect(attacked.everyStep).toBe(true);
    expect(attacked.costliest).toBeLessThanOrEqual(SLOWDOWN * idle.costliest);
    expect(attacked.ms).toBeLessThanOrEqual(SLOWDOWN * idle.ms);
  });
});
