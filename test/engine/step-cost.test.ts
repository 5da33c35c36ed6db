// The step cost model (runtime/step-cost.ts): fed steps of simulated backends whose cost is a known line in the
// tokens fed, it must find the line and turn a slowdown into the token cap that keeps a step within it.
import { describe, expect, it } from "vitest";
import { StepCostModel } from "../../node/engine/runtime/step-cost.ts";

/** A model fed `rounds` steps of each size, each costing fixed + perToken x tokens. */
function fed(fixed: number, perToken: number, sizes: readonly number[], rounds = 4): StepCostModel {
  const model = new StepCostModel();
  for (let i = 0; i < rounds; i++) for (const tokens of sizes) model.observe(tokens, fixed + perToken * tokens);
  return model;
}

describe("step cost model", () => {
  it("fits a step's fixed cost and its cost per token from steps of several sizes", () => {
    const fit = fed(0.5, 0.25, [1, 5, 64, 300]).fit()!;
    expect(fit.fixedMs).toBeCloseTo(0.5, 9);
    expect(fit.perTokenMs).toBeCloseTo(0.25, 9);
  });

  it("caps a step at floor(slowdown + (slowdown - 1) x fixed / perToken) tokens", () => {
    // A lone decode step costs 0.5 + 0.25 = 0.75 ms; 2x is 1.5 ms: 4 tokens. 3x is 2.25 ms: 7 tokens.
    const model = fed(0.5, 0.25, [1, 5, 64]);
    expect(model.tokenCap(2)).toBe(4);
    expect(model.tokenCap(3)).toBe(7);
    expect(model.tokenCap(1)).toBe(1);
    expect(model.tokenCap(Infinity)).toBe(Infinity);
    // A backend whose step barely grows with its tokens (a GPU) allows large steps at the same slowdown.
    expect(fed(3, 0.01, [1, 8, 64, 256]).tokenCap(2)).toBe(302); // 2 + 3 / 0.01, whatever the rounding of 0.01
  });

  it("sets no cap before any step ran; never more than twice the largest step measured", () => {
    expect(new StepCostModel().fit()).toBeNull();
    expect(new StepCostModel().tokenCap(2)).toBe(Infinity);
    // A cost that does not grow with the tokens (or seems to fall) allows twice the largest step seen so far.
    expect(fed(3, 0, [1, 8, 64]).tokenCap(2)).toBe(128);
    expect(fed(3, -0.01, [1, 8, 64]).tokenCap(2)).toBe(128);
    // The fit allows 302 tokens, but steps of 4 are the largest measured: 8, then 16 once 8 were measured.
    const model = fed(3, 0.01, [1, 4]);
    expect(model.tokenCap(2)).toBe(8);
    model.observe(8, 3.08);
    expect(model.tokenCap(2)).toBe(16);
    expect(model.tokenCap(Infinity)).toBe(Infinity);
  });

  it("leans to the fast steps: lone steps stretched by other processes do not make every step look cheap", () => {
    // Lone steps cost 0.75 ms, one in three is stretched to 6 ms; steps of 64 tokens cost 16.5 ms (0.5 + 0.25 x 64).
    const model = new StepCostModel();
    for (let i = 0; i < 30; i++) {
      model.observe(64, 16.5);
      for (const ms of [0.75, 0.75, 6]) model.observe(1, ms);
    }
    // The true line gives 4 tokens; the mean of the lone steps (2.5 ms) would give 11.
    expect(model.tokenCap(2)).toBeGreaterThanOrEqual(4);
    expect(model.tokenCap(2)).toBeLessThanOrEqual(6);
  });

  it("takes no fixed cost when steps of one size were seen, or when the fit finds a negative one", () => {
    expect(fed(1, 0.5, [8]).fit()).toEqual({ fixedMs: 0, perTokenMs: 5 / 8 });
    expect(fed(1, 0.5, [8]).tokenCap(2)).toBe(2);
    const model = new StepCostModel();
    model.observe(1, 0.1); // cheaper than the line through the larger steps would say
    model.observe(10, 10);
    model.observe(100, 100);
    expect(model.fit()!.fixedMs).toBe(0);
    // The line through the origin would allow 2 tokens; what was measured vouches for 1: between the 1-token step
    // (0.1 ms) and the 10-token one (10 ms) the time reaches 2 x 0.1 ms at 1.09 tokens.
    expect(model.tokenCap(2)).toBe(1);
  });

  it("never allows a size past where the measured steps reach slowdown x a lone step, whatever the fit", () => {
    // A lone step costs 0.5 ms; from 4 tokens on a step costs about 3 ms, then its tokens (a worker pool's hand-off
    // at every larger step): 4-32 tokens at 3 ms, 64 at 5.5, 128 at 9. The line through them has a fixed part of
    // about 2.5 ms and would allow some 36 tokens, each step then 4 ms, 8 x a lone one.
    const model = new StepCostModel();
    const steps: [number, number][] = [
      [1, 0.5],
      [4, 3],
      [8, 3],
      [16, 3.1],
      [32, 3.4],
      [64, 5.5],
      [128, 9],
    ];
    for (let i = 0; i < 4; i++) for (const [tokens, ms] of steps) model.observe(tokens, ms);
    expect(model.fit()!.fixedMs / model.fit()!.perTokenMs).toBeGreaterThan(30);
    // 2 x 0.5 ms is reached between 1 token (0.5 ms) and 4 (3 ms): at 1.6 tokens.
    expect(model.tokenCap(2)).toBe(1);
    // 8 x 0.5 = 4 ms is reached between 32 tokens (3.4 ms) and 64 (5.5 ms): 32 + 0.6 x 32 / 2.1 = 41.1 tokens.
    expect(model.tokenCap(8)).toBe(41);
  });

  it("takes the fastest 1-token step as the lone one: a flood's 1-token steps of long contexts do not raise it", () => {
    // A client's lone step costs 0.5 ms. Then a flood runs: its 1-token steps (rows of long contexts) cost 1.5 ms, its
    // 2-token steps 2.2 ms. Against the 1-token steps' mean (about 1.5 ms) a 2-token step would be within 2x; against
    // what a client's lone step costs it is 4.4x.
    const model = new StepCostModel();
    for (let i = 0; i < 16; i++) model.observe(1, 0.5);
    for (let i = 0; i < 200; i++) {
      model.observe(1, 1.5);
      model.observe(2, 2.2);
    }
    expect(model.tokenCap(2)).toBe(1);
    // The reference rises slowly while only slower lone steps run (0.1% of the difference a step): the same flood for
    // 5,000 steps more reads as the lone cost at last, and 2 tokens are within 2x of it.
    for (let i = 0; i < 5000; i++) {
      model.observe(1, 1.5);
      model.observe(2, 2.2);
    }
    expect(model.tokenCap(2)).toBeGreaterThanOrEqual(2);
  });

  it("follows a backend that became slower per token, and keeps what small steps cost under a steady load", () => {
    const model = fed(0.5, 0.05, [1, 4, 64]);
    expect(model.tokenCap(2)).toBe(12);
    // Now only steps of 4 tokens run, each at 0.5 + 0.25 x 4: the 1-token bucket still says what a lone step costs.
    for (let i = 0; i < 40; i++) model.observe(4, 1.5);
    for (let i = 0; i < 40; i++) model.observe(64, 16.5);
    const fit = model.fit()!;
    expect(fit.perTokenMs).toBeCloseTo(0.25, 1);
    expect(model.tokenCap(2)).toBeLessThan(12);
  });

  it("ignores steps that fed nothing or whose time is not a duration", () => {
    const model = fed(0.5, 0.25, [1, 5, 64]);
    model.observe(0, 100);
    model.observe(4, Number.NaN);
    model.observe(4, -1);
    model.observe(4, Infinity);
    expect(model.tokenCap(2)).toBe(4);
  });
});
