// The scheduler under a token cap per step (plan(tokenCap), the engine's step cost model gives the number): with
// several owners a step feeds at most cap tokens, shared owner by owner, owners asking within their share of the
// batch first, then the one served least recently first, oldest first inside an owner; sequences without a row keep their KV. With one owner the cap does
// not apply. Caps here are given explicitly: what the scheduler decides is logical, no clock is involved.
import { describe, expect, it } from "vitest";
import type { Row } from "../../node/engine/runtime/scheduler.ts";
import { setup, shape } from "./scheduler-helpers.ts";

const tokens = (rows: readonly Row[]) => rows.reduce((n, r) => n + r.to - r.from, 0);

/** Tokens of the step per owner. */
function perOwner(rows: readonly Row[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) out[r.seq.owner] = (out[r.seq.owner] ?? 0) + r.to - r.from;
  return out;
}

describe("scheduler: a token cap per step among owners", () => {
  it("3 flooding owners x 32 streams and an honest one: the honest request has a row in every step, each within the cap", () => {
    const CAP = 8;
    const { scheduler, add, step } = setup(1024, 16);
    const flood = Array.from({ length: 96 }, (_, i) => add(8, { owner: `sybil-${i % 3}` }));
    step(); // one owner-blind step fills the batch: 64 prompts of 8 tokens are 512 tokens
    expect(scheduler.running).toHaveLength(64);
    const honest = add(4, { owner: "alice" });
    const kvBefore = new Map(flood.map((s) => [s, s.blockTable.length]));
    let steps = 0;
    while (honest.generated.length < 16) {
      const rows = step(CAP);
      steps++;
      expect(rows.map((r) => r.seq)).toContain(honest);
      expect(tokens(rows)).toBeLessThanOrEqual(CAP);
      // Every owner with work has rows in every step (the cap, 8, is above the owners, 4).
      expect(Object.keys(perOwner(rows)).sort()).toEqual(["alice", "sybil-0", "sybil-1", "sybil-2"]);
    }
    // Alone it takes 16 steps (its prompt in one); here its part of the first step is 8 / 4 owners = 2 tokens.
    expect(steps).toBe(17);
    // Only one sequence was preempted: the youngest of the owner running the most, so that alice got into the full
    // batch (its fair share). The flood's sequences that had no rows kept their KV blocks and their place.
    expect(scheduler.preemptions).toBe(1);
    expect(scheduler.running).toHaveLength(64);
    for (const seq of scheduler.running.filter((s) => s !== honest)) {
      expect(seq.blockTable.length).toBeGreaterThanOrEqual(kvBefore.get(seq)!);
    }
    // Inside an owner, the oldest sequences had the rows: sybil-0's first ran 16 more positions, its 20th none.
    expect(flood[0].computed).toBe(8 + 17);
    expect(flood[57].computed).toBe(8);
  });

  it("takes owners of equal work in turn when the cap is below their number: a row each every other step", () => {
    const { add, step } = setup(1024, 16);
    for (const owner of ["a", "b", "c", "d"]) for (let i = 0; i < 2; i++) add(4, { owner });
    step();
    const first = step(2);
    const second = step(2);
    expect(tokens(first)).toBe(2);
    expect(tokens(second)).toBe(2);
    expect(Object.keys({ ...perOwner(first), ...perOwner(second) }).sort()).toEqual(["a", "b", "c", "d"]);
    expect(Object.keys(perOwner(step(2)))).toEqual(Object.keys(perOwner(first)));
  });

  it("serves owners asking within their share of the batch before floods, whatever the cap", () => {
    // 3 owners x 32 requests ask more than their share (64 / 4 owners = 16); alice's one request comes first in
    // every step, the floods take turns with the token left.
    const { add, step } = setup(2048, 16);
    for (let i = 0; i < 96; i++) add(8, { owner: `sybil-${i % 3}` });
    for (let i = 0; i < 20; i++) step(2);
    const alice = add(1, { owner: "alice" });
    const floods = new Set<string>();
    for (let i = 0; i < 16; i++) {
      const rows = step(2);
      expect(tokens(rows)).toBe(2);
      expect(rows[0].seq).toBe(alice);
      floods.add(rows[1].seq.owner);
    }
    expect(alice.generated).toHaveLength(16);
    expect([...floods].sort()).toEqual(["sybil-0", "sybil-1", "sybil-2"]);
  });

  it("gives each flood a turn at least every agingSteps steps, however many light owners keep arriving", () => {
    // Cap 1: one owner a step. Light owners (one request each, within their share of 8 / 4 owners = 2) keep arriving
    // one after the other and would always come before the floods (4 requests each). An owner with work and no turn
    // for agingSteps steps goes first: each flood waits agingSteps steps and has its turn the step after (the three
    // aged together go one after the other, then keep that rhythm); the light owners keep the other steps.
    const run = (agingSteps: number) => {
      const { add, scheduler, step } = setup(1024, 16, { maxRunning: 8, agingSteps });
      for (let i = 0; i < 12; i++) add(4, { owner: `flood-${i % 3}` });
      step();
      step();
      let light = add(1, { owner: "light-0" });
      const turns: Record<string, number[]> = { "flood-0": [], "flood-1": [], "flood-2": [] };
      let lightSteps = 0;
      for (let s = 0; s < 90; s++) {
        const rows = step(1);
        expect(tokens(rows)).toBe(1);
        const owner = rows[0].seq.owner;
        if (owner in turns) turns[owner].push(s);
        else lightSteps++;
        if (light.generated.length === 4) {
          scheduler.drop(light);
          light = add(1, { owner: `light-${s + 1}` });
        }
      }
      return { turns, lightSteps };
    };
    const { turns, lightSteps } = run(8);
    for (const steps of Object.values(turns)) {
      expect(steps.length).toBeGreaterThanOrEqual(9);
      expect(steps[0]).toBeLessThanOrEqual(8 + 2);
      for (let i = 1; i < steps.length; i++) expect(steps[i] - steps[i - 1]).toBe(8 + 1);
    }
    // The light owners keep 6 steps in 9.
    expect(lightSteps).toBe(90 - 28);
    // Without the bound (agingSteps beyond the run) the floods never have a turn while light owners arrive.
    expect(Object.values(run(1000).turns).flat()).toEqual([]);
  });

  it("counts an owner asking exactly its share as within it", () => {
    // maxRunning 8, two owners: a share of 4. a asks 4, b 10: a's rows come first in every step of 1 token.
    const { add, step } = setup(1024, 16, { maxRunning: 8 });
    for (let i = 0; i < 4; i++) add(4, { owner: "a" });
    for (let i = 0; i < 10; i++) add(4, { owner: "b" });
    step();
    for (let i = 0; i < 8; i++) expect(perOwner(step(1))).toEqual({ a: 1 });
  });

  it("does not apply the cap with one owner: a lone client keeps its batch", () => {
    const { add, step } = setup(1024, 16);
    for (let i = 0; i < 8; i++) add(4, { owner: "solo" });
    step();
    expect(step(2)).toHaveLength(8);
  });

  it("serves the owner served least recently first: an odd token left goes to each owner in turn", () => {
    // Cap 5, two owners with four decoding sequences each: 2 + 2 in the first round, the fifth token alternates.
    const { add, step } = setup(1024, 16);
    for (let i = 0; i < 4; i++) add(4, { owner: "a" });
    for (let i = 0; i < 4; i++) add(4, { owner: "b" });
    step();
    const first = step(5);
    expect(perOwner(first)).toEqual({ a: 3, b: 2 });
    expect(perOwner(step(5))).toEqual({ a: 2, b: 3 });
    expect(perOwner(step(5))).toEqual({ a: 3, b: 2 });
    // Inside an owner, oldest first.
    expect(first.filter((r) => r.seq.owner === "a").map((r) => r.seq.id)).toEqual([1, 2, 3]);
  });

  it("gives the tokens left after the first round to the owners running fewest sequences first", () => {
    // Cap 5, three owners, one token each in the first round; of the two left, alice (running none) takes one
    // before the floods (four each) do.
    const { add, step } = setup(1024, 16);
    for (const owner of ["flood-1", "flood-2"]) for (let i = 0; i < 4; i++) add(4, { owner });
    step();
    const alice = add(5, { owner: "alice" });
    expect(shape(step(5))).toEqual([
      [1, 4, 5, true],
      [5, 4, 5, true],
      [alice.id, 0, 2, false],
      [2, 4, 5, true],
    ]);
  });

  it("grows a prefill chunk over the rounds when the other owners have no more work", () => {
    // a decodes two sequences (2 tokens); b's 10-token prompt takes its part (8 / 2 = 4), then 2 more of a's part.
    const { add, step } = setup(1024, 16);
    add(4, { owner: "a" });
    add(4, { owner: "a" });
    step();
    add(10, { owner: "b" });
    expect(shape(step(8))).toEqual([
      [1, 4, 5, true],
      [2, 4, 5, true],
      [3, 0, 6, false],
    ]);
    expect(shape(step(8))).toEqual([
      [1, 5, 6, true],
      [2, 5, 6, true],
      [3, 6, 10, true],
    ]);
  });

  it("serves an owner never served before the owners served in the last steps", () => {
    const { add, step } = setup(1024, 16);
    for (const owner of ["a", "b"]) for (let i = 0; i < 2; i++) add(4, { owner });
    step();
    step(2);
    const c = add(1, { owner: "c" });
    // Budget 3 for 3 owners, one token each: the newcomer's turn comes first.
    expect(shape(step(3))).toEqual([
      [c.id, 0, 1, true],
      [1, 5, 6, true],
      [3, 5, 6, true],
    ]);
  });

  it("passes over a request whose adapter is loading and admits its owner's next one", () => {
    const ADAPTER = `0x${"a1".repeat(32)}`;
    const { slots, add, step } = setup(1024, 16);
    add(4, { owner: "a" });
    step();
    slots.loading.add(ADAPTER);
    const loading = add(4, { owner: "b", adapterId: ADAPTER });
    const next = add(4, { owner: "b" });
    expect(shape(step(4))).toEqual([
      [1, 4, 5, true],
      [next.id, 0, 3, false],
    ]);
    expect(loading.state).toBe("waiting");
  });

  it("stops admissions behind an aged request that does not fit; running sequences keep their rows", () => {
    // 6 blocks of 4: a's 12-token prompt holds 3 and its decode row takes a 4th. b's 16 tokens need 4: no room.
    const run = (agingSteps: number) => {
      const { add, step } = setup(6, 4, { agingSteps });
      add(12, { owner: "a" });
      step();
      const b = add(16, { owner: "b" });
      const c = add(4, { owner: "c" });
      return { rows: shape(step(6)), b, c };
    };
    // Aged at once (agingSteps 0): c, newer, must not take the blocks b waits for.
    const aged = run(0);
    expect(aged.rows).toEqual([[1, 12, 13, true]]);
    expect([aged.b.state, aged.c.state]).toEqual(["waiting", "waiting"]);
    // Not aged yet: c goes ahead (its part, 2 tokens, then the 2 nobody else takes).
    const young = run(32);
    expect(young.rows).toEqual([
      [1, 12, 13, true],
      [3, 0, 4, true],
    ]);
    expect([young.b.state, young.c.state]).toEqual(["waiting", "running"]);
  });

  it("plans as without a cap when the cap is at least the token budget", () => {
    const plans = [undefined, 512].map((cap) => {
      const { add, step } = setup(1024, 16);
      for (const owner of ["a", "b", "a", "b"]) add(200, { owner });
      return [shape(step(cap)), shape(step(cap))];
    });
    expect(plans[1]).toEqual(plans[0]);
  });

  it("keeps the preemption of the youngest when a decode row finds the KV pool empty", () => {
    // 5 blocks of 4: two 8-token prompts hold 4; a's decode row takes the fifth, b's (the youngest) finds none.
    const { scheduler, add, step } = setup(5, 4);
    const a = add(8, { owner: "a" });
    const b = add(8, { owner: "b" });
    step();
    expect(shape(step(2))).toEqual([[1, 8, 9, true]]);
    expect(b).toMatchObject({ state: "waiting", computed: 0, preemptions: 1 });
    expect(a.preemptions).toBe(0);
    expect(scheduler.running).toEqual([a]);
    // Preempted in this step, it is not taken back in the same step; the next one tries again (no room yet).
    expect(shape(step(2))).toEqual([[1, 9, 10, true]]);
  });

  it("takes a preempted sequence's row out of the step even when it was planned first", () => {
    // 4 blocks of 4: two 7-token prompts hold two each. a decodes in its last free position first; then b is served
    // first (least recently), its row fits, and a's next row needs a block: b, the youngest, is preempted.
    const { add, step } = setup(4, 4);
    const a = add(7, { owner: "a" });
    const b = add(7, { owner: "b" });
    step();
    expect(shape(step(1))).toEqual([[a.id, 7, 8, true]]);
    expect(shape(step(2))).toEqual([[a.id, 8, 9, true]]);
    expect(b).toMatchObject({ state: "waiting", computed: 0, preemptions: 1 });
  });

  it("refuses a slowdown below 1 or not a number, naming the option", () => {
    expect(() => setup(4, 4, { slowdown: 0.5 })).toThrow(
      expect.objectContaining({
        code: "invalid_option",
        option: "scheduler.slowdown",
        message: expect.stringMatching(/^scheduler.slowdown: must be a number >= 1, got 0.5 \(.*Infinity turns/),
      }),
    );
    expect(() => setup(4, 4, { slowdown: Number.NaN })).toThrow(/scheduler.slowdown: must be a number >= 1, got NaN/);
    expect(() => setup(4, 4, { slowdown: "3" as unknown as number })).toThrow(/scheduler.slowdown: must be a number/);
    expect(() => setup(4, 4, { slowdown: Infinity })).not.toThrow();
    expect(() => setup(4, 4, { slowdown: 1 })).not.toThrow();
  });
});
