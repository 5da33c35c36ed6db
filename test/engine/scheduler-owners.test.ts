// The scheduler's fairness among owners (a request's peer or payer), on the bench of scheduler-helpers.ts: which
// prefill chunks and admissions go first (an owner's k-th waiting request ranks L + k, L: how many it runs), and
// when a newcomer below its share of the batch takes a row from the owner running the most (its youngest
// sequence), but never from one running fewer than two more than itself.
import { describe, expect, it } from "vitest";
import { setup, shape } from "./scheduler-helpers.ts";

const ids = (seqs: readonly { id: number }[]) => seqs.map((s) => s.id);

describe("scheduler: order among owners", () => {
  it("admits a newcomer's request before a flooding owner's later ones", () => {
    // A budget of 8 tokens holds two 4-token prompts: the flood's first and the newcomer's, not the flood's second.
    const { scheduler, add, step } = setup(64, 4, { maxBatchTokens: 8 });
    const flood = [add(4, { owner: "flood" }), add(4, { owner: "flood" }), add(4, { owner: "flood" })];
    const alice = add(4, { owner: "alice" });
    expect(shape(step())).toEqual([
      [1, 0, 4, true],
      [4, 0, 4, true],
    ]);
    expect(ids(scheduler.running)).toEqual([1, 4]);
    // Then the flood's next ones, oldest first, in what the two decode rows leave of the budget.
    expect(shape(step())).toEqual([
      [1, 4, 5, true],
      [4, 4, 5, true],
      [2, 0, 4, true],
      [3, 0, 2, false],
    ]);
    expect(flood.map((s) => s.state)).toEqual(["running", "running", "running"]);
    expect(alice.state).toBe("running");
    expect(scheduler.preemptions).toBe(0);
  });

  it("gives prefill chunks of running sequences the same order: an owner's second runs after another's first", () => {
    // Budget 6: the flood's two 8-token prompts are admitted over two steps; then alice's, arriving last, is
    // prefilled ahead of the flood's second, which is still prefilling.
    const { add, step } = setup(64, 4, { maxBatchTokens: 6 });
    add(8, { owner: "flood" });
    add(8, { owner: "flood" });
    expect(shape(step())).toEqual([[1, 0, 6, false]]);
    expect(shape(step())).toEqual([
      [1, 6, 8, true],
      [2, 0, 4, false],
    ]);
    add(8, { owner: "alice" });
    expect(shape(step())).toEqual([
      [1, 8, 9, true],
      [3, 0, 5, false],
    ]);
    expect(shape(step())).toEqual([
      [1, 9, 10, true],
      [3, 5, 8, true],
      [2, 4, 6, false],
    ]);
  });

  it("keeps the plain order (oldest first) when every request has the same owner", () => {
    const { add, step } = setup(64, 4, { maxBatchTokens: 8 });
    for (let i = 0; i < 3; i++) add(4, { owner: "solo" });
    expect(shape(step())).toEqual([
      [1, 0, 4, true],
      [2, 0, 4, true],
    ]);
  });
});

describe("scheduler: taking a share of the batch", () => {
  it("preempts the youngest sequence of the owner running the most, not the youngest overall", () => {
    // maxRunning 5: the flood runs four, bob one (the youngest of all). Alice's share is 5 / 3 owners = 1.
    const { scheduler, add, step } = setup(64, 4, { maxRunning: 5 });
    const flood = [1, 2, 3, 4].map(() => add(4, { owner: "flood" }));
    const bob = add(4, { owner: "bob" });
    step();
    expect(ids(scheduler.running)).toEqual([1, 2, 3, 4, 5]);
    const alice = add(4, { owner: "alice" });
    // The victim's decode row leaves the step with it.
    expect(shape(step())).toEqual([
      [1, 4, 5, true],
      [2, 4, 5, true],
      [3, 4, 5, true],
      [5, 4, 5, true],
      [6, 0, 4, true],
    ]);
    expect(flood.map((s) => s.preemptions)).toEqual([0, 0, 0, 1]);
    expect(bob.preemptions).toBe(0);
    expect(alice.state).toBe("running");
    expect(ids(scheduler.running)).toEqual([1, 2, 3, 5, 6]);
    expect(ids(scheduler.waiting)).toEqual([4]);
  });

  it("admits a newcomer's requests up to its share in one step, each one counted at once", () => {
    // maxRunning 4, the flood runs four; alice (share 4 / 2 = 2) sends four. Two of the flood's step out for her
    // first two; her third finds her at her share, whatever is left of the flood.
    const { scheduler, add, step } = setup(64, 4, { maxRunning: 4 });
    for (let i = 0; i < 4; i++) add(4, { owner: "flood" });
    step();
    const alice = [1, 2, 3, 4].map(() => add(4, { owner: "alice" }));
    step();
    expect(alice.map((s) => s.state)).toEqual(["running", "running", "waiting", "waiting"]);
    expect(ids(scheduler.running)).toEqual([1, 2, 5, 6]);
    expect(scheduler.preemptions).toBe(2);
  });

  it("takes the row from the owner running the most even when a lighter one ran first; on equal loads from the one that ran first", () => {
    // maxRunning 7: bob runs one (the oldest), flood-1 and flood-2 three each; alice's share is 7 / 4 = 1.
    const { scheduler, add, step } = setup(64, 4, { maxRunning: 7 });
    add(4, { owner: "bob" });
    const flood1 = [1, 2, 3].map(() => add(4, { owner: "flood-1" }));
    const flood2 = [1, 2, 3].map(() => add(4, { owner: "flood-2" }));
    step();
    const alice = add(4, { owner: "alice" });
    step();
    expect(alice.state).toBe("running");
    expect(flood1.map((s) => s.preemptions)).toEqual([0, 0, 1]);
    expect(flood2.map((s) => s.preemptions)).toEqual([0, 0, 0]);
    expect(scheduler.preemptions).toBe(1);
  });

  it("lets an aged request waiting for a row (the batch full) not hold back a newcomer taking its share", () => {
    // maxRunning 4: the flood runs three, bob one (his share, 4 / 3 owners = 1). Aged at once (agingSteps 0), bob's
    // second request finds no row and may take none; alice's request behind it takes the flood's youngest row.
    const { scheduler, slots, add, step } = setup(64, 4, { maxRunning: 4, agingSteps: 0 });
    for (let i = 0; i < 3; i++) add(4, { owner: "flood" });
    add(4, { owner: "bob" });
    step();
    slots.loading.add(`0x${"a1".repeat(32)}`);
    add(4, { owner: "alice", adapterId: `0x${"a1".repeat(32)}` }); // loading: passed over
    const bob = add(4, { owner: "bob" });
    const alice = add(4, { owner: "alice" });
    step();
    expect(bob.state).toBe("waiting");
    expect(alice.state).toBe("running");
    expect(scheduler.preemptions).toBe(1);
  });

  it("takes nothing for an owner that already runs its share, nor for the victim waiting to come back", () => {
    const { scheduler, add, step } = setup(64, 4, { maxRunning: 5 });
    for (let i = 0; i < 4; i++) add(4, { owner: "flood" });
    add(4, { owner: "bob" });
    step();
    add(4, { owner: "alice" });
    step();
    expect(scheduler.preemptions).toBe(1);
    // Alice runs 1 = her share: her second request waits although the flood still runs three (1 + 2).
    const second = add(4, { owner: "alice" });
    for (let i = 0; i < 3; i++) step();
    expect(second.state).toBe("waiting");
    expect(scheduler.preemptions).toBe(1);
    expect(ids(scheduler.running)).toEqual([1, 2, 3, 5, 6]);
  });

  it("never takes a row from an owner running fewer than two more: two owners do not trade rows back and forth", () => {
    // maxRunning 1: the flood runs one, alice's share is max(1, 1 / 2) = 1, but 1 < 0 + 2.
    const { scheduler, add, step } = setup(64, 4, { maxRunning: 1 });
    const first = add(4, { owner: "flood", maxTokens: 3 });
    step();
    const alice = add(4, { owner: "alice" });
    step();
    step();
    expect(scheduler.preemptions).toBe(0);
    expect(alice.state).toBe("waiting");
    expect(first.state).toBe("running");
  });

  it("gives a share of at least one when there are more owners than rows", () => {
    // maxRunning 2, three owners: 2 / 3 rounds to 0, yet alice gets the flood's second row; bob then finds
    // nobody running two more than him and waits.
    const { scheduler, add, step } = setup(64, 4, { maxRunning: 2 });
    const flood = [add(4, { owner: "flood" }), add(4, { owner: "flood" })];
    step();
    const alice = add(4, { owner: "alice" });
    const bob = add(4, { owner: "bob" });
    step();
    expect(flood.map((s) => s.preemptions)).toEqual([0, 1]);
    expect(alice.state).toBe("running");
    expect(bob.state).toBe("waiting");
    expect(scheduler.preemptions).toBe(1);
  });

  it("preempts as many of the heaviest owner's youngest as the newcomer's prompt needs blocks", () => {
    // 6 blocks of 4: the flood's three 7-token prompts hold two each (decode rows stay in them). Alice's 16
    // tokens need four: the flood's two youngest step out, its oldest keeps running.
    const { scheduler, kv, add, step } = setup(6, 4);
    const flood = [1, 2, 3].map(() => add(7, { owner: "flood" }));
    step();
    expect(kv.freeBlocks).toBe(0);
    const alice = add(16, { owner: "alice" });
    expect(shape(step())).toEqual([
      [1, 7, 8, true],
      [4, 0, 16, true],
    ]);
    expect(flood.map((s) => s.preemptions)).toEqual([0, 1, 1]);
    expect(alice.blockTable).toHaveLength(4);
    expect(ids(scheduler.waiting)).toEqual([2, 3]);
  });
});
