// The scheduler on its own, on the bench of scheduler-helpers.ts (real Sequences and a real BlockAllocator, steps
// "run" by moving each row's sequence forward, a slot source whose adapters are ready or loading). What it must
// decide: which rows go into a step (decode first, oldest first, within the token budget), who is admitted, who is
// preempted when the KV pool runs dry (the youngest), and that aged requests stop being overtaken. Fairness among
// owners: scheduler-owners.test.ts; preemption in the whole engine: scheduler-engine.test.ts.
import { describe, expect, it } from "vitest";
import { BlockAllocator } from "../../node/engine/kv/block-allocator.ts";
import { DEFAULT_SCHEDULER, Scheduler } from "../../node/engine/runtime/scheduler.ts";
import { setup, shape, TestSlots } from "./scheduler-helpers.ts";

const ADAPTER = `0x${"a1".repeat(32)}`;
const OTHER = `0x${"b2".repeat(32)}`;

describe("scheduler: preemption", () => {
  it("preempts the youngest running sequence when a decode row finds the KV pool empty", () => {
    // 6 blocks of 4 positions; three 8-token prompts take all 6. The oldest's first decode row needs a 7th.
    const { scheduler, kv, add, step } = setup(6, 4);
    const [a, b, c] = [add(8), add(8), add(8)];
    expect(shape(step())).toEqual([
      [1, 0, 8, true],
      [2, 0, 8, true],
      [3, 0, 8, true],
    ]);
    expect(kv.freeBlocks).toBe(0);
    const rows = step();
    expect(shape(rows)).toEqual([
      [1, 8, 9, true],
      [2, 8, 9, true],
    ]);
    expect([a.preemptions, b.preemptions, c.preemptions]).toEqual([0, 0, 1]);
    expect(scheduler.preemptions).toBe(1);
    expect(scheduler.running).toEqual([a, b]);
    expect(scheduler.waiting).toEqual([c]);
    // The victim lost its blocks and starts over: its generated token is recomputed as input.
    expect(c).toMatchObject({ state: "waiting", computed: 0, blockTable: [] });
    expect(c.inputLength).toBe(9);
    expect(a.blockTable).toHaveLength(3);
    expect(b.blockTable).toHaveLength(3);
  });

  it("preempts the growing sequence itself when it is the youngest", () => {
    // 5 blocks: two 8-token prompts hold 4. The older's decode row takes the last block; the younger then needs
    // one more and is itself the youngest running: it steps out, and the older keeps its row.
    const { scheduler, add, step } = setup(5, 4);
    const [a, b] = [add(8), add(8)];
    step();
    expect(shape(step())).toEqual([[1, 8, 9, true]]);
    expect([a.preemptions, b.preemptions]).toEqual([0, 1]);
    expect(scheduler.running).toEqual([a]);
    expect(scheduler.waiting).toEqual([b]);
  });

  it("unpins the adapter slot of a preempted sequence", () => {
    const { slots, add, step } = setup(4, 4);
    slots.ready.set(ADAPTER, 2);
    add(8);
    const b = add(8, { adapterId: ADAPTER });
    step();
    expect(slots.pins.get(2)).toBe(1);
    step();
    expect(b.preemptions).toBe(1);
    expect(b.slot).toBe(-1);
    expect(slots.pins.get(2)).toBe(0);
  });

  it("puts a preempted sequence back in the waiting queue ahead of newer arrivals", () => {
    const { scheduler, add, step } = setup(6, 4);
    add(8);
    add(8);
    const c = add(8);
    step();
    const d = add(4);
    step(); // preempts c; d does not fit either
    expect(scheduler.waiting).toEqual([c, d]);
  });
});

describe("scheduler: planning a step", () => {
  it("puts decode rows first, oldest first, then prefill chunks, then admissions, within the token budget", () => {
    const { scheduler, add, step } = setup(64, 4, { maxBatchTokens: 10 });
    const a = add(3);
    const b = add(3);
    expect(shape(step())).toEqual([
      [1, 0, 3, true],
      [2, 0, 3, true],
    ]);
    const c = add(12); // prefills in chunks: 8 tokens fit after two decode rows
    expect(shape(step())).toEqual([
      [1, 3, 4, true],
      [2, 3, 4, true],
      [3, 0, 8, false],
    ]);
    add(2); // fits the 4 tokens of budget left after two decode rows and c's last 4 prompt tokens
    expect(shape(step())).toEqual([
      [1, 4, 5, true],
      [2, 4, 5, true],
      [3, 8, 12, true],
      [4, 0, 2, true],
    ]);
    expect(scheduler.running.map((s) => s.id)).toEqual([1, 2, 3, 4]);
    expect([a.computed, b.computed, c.computed]).toEqual([5, 5, 12]);
  });

  it("caps the rows of a step at maxBatchTokens even with room in the pool", () => {
    const { add, step } = setup(64, 4, { maxBatchTokens: 5 });
    add(4);
    add(4);
    expect(shape(step())).toEqual([
      [1, 0, 4, true],
      [2, 0, 1, false],
    ]);
    expect(shape(step())).toEqual([
      [1, 4, 5, true],
      [2, 1, 4, true],
    ]);
  });

  it("admits at most maxRunning sequences", () => {
    const { scheduler, add, step } = setup(64, 4, { maxRunning: 2 });
    add(2);
    add(2);
    const c = add(2);
    expect(step().map((r) => r.seq.id)).toEqual([1, 2]);
    expect(scheduler.waiting).toEqual([c]);
  });

  it("admits a request only when blocks for its whole input are free, keeping a 1% watermark while others run", () => {
    // 200 blocks of 1 position: the watermark is 2 blocks.
    const { scheduler, add, step } = setup(200, 1, { maxBatchTokens: 512 });
    const a = add(150);
    expect(step().map((r) => r.seq.id)).toEqual([1]);
    const b = add(49); // 150 + 49 + watermark 2 > 200: waits
    step();
    expect(scheduler.waiting).toEqual([b]);
    scheduler.drop(a);
    expect(scheduler.waiting).toEqual([b]);
    expect(step().map((r) => r.seq.id)).toEqual([2]); // nobody else runs: no watermark kept
    const c = add(148); // 49 + 1 (decode) + 148 + 2 = 200 blocks: exactly fits
    expect(step().map((r) => r.seq.id)).toEqual([2, 3]);
    expect(c.state).toBe("running");
  });

  it("keeps no watermark while nothing runs: a request for every block of the pool is admitted", () => {
    // 200 blocks of 1 position (a watermark of 2 while others run).
    const { scheduler, add, step } = setup(200, 1, { maxBatchTokens: 512 });
    const whole = add(200);
    expect(step().map((r) => r.seq.id)).toEqual([1]);
    expect(whole.state).toBe("running");
    expect(scheduler.running).toEqual([whole]);
  });

  it("unpins slot 0 like any other, and nothing for a request on the base model", () => {
    const { scheduler, slots, add, step } = setup(64, 4);
    slots.ready.set(ADAPTER, 0);
    const a = add(4, { adapterId: ADAPTER });
    const base = add(4);
    step();
    expect(slots.pins.get(0)).toBe(1);
    scheduler.drop(a);
    scheduler.drop(base);
    expect([...slots.pins]).toEqual([[0, 0]]);
  });

  it("pins the adapter slot at admission and unpins it when the sequence is dropped", () => {
    const { scheduler, slots, add, step } = setup(64, 4);
    slots.ready.set(ADAPTER, 3);
    const a = add(4, { adapterId: ADAPTER });
    const base = add(4);
    step();
    expect([a.slot, base.slot]).toEqual([3, -1]);
    expect(slots.pins.get(3)).toBe(1);
    scheduler.drop(a);
    expect(slots.pins.get(3)).toBe(0);
    expect(a).toMatchObject({ state: "finished", slot: -1, blockTable: [] });
    expect(scheduler.running).toEqual([base]);
  });

  it("lets others go ahead of a request whose adapter is loading, and tells the store what the queue wants", () => {
    const { scheduler, slots, add, step } = setup(64, 4);
    slots.loading.add(ADAPTER);
    const waiting = add(4, { adapterId: ADAPTER });
    add(4, { adapterId: OTHER });
    add(4);
    slots.loading.add(OTHER);
    expect(step().map((r) => r.seq.id)).toEqual([3]);
    expect(slots.wanted.at(-1)).toEqual([ADAPTER, OTHER]);
    slots.loading.delete(ADAPTER);
    slots.ready.set(ADAPTER, 0);
    expect(step().map((r) => r.seq.id)).toEqual([3, 1]);
    expect(waiting.state).toBe("running");
    expect(slots.wanted.at(-1)).toEqual([OTHER]);
  });

  it("counts steps and records when a sequence was first admitted", () => {
    const { scheduler, add, step } = setup(64, 4);
    const a = add(4);
    expect(a.admittedAt).toBe(-1);
    step();
    const admitted = a.admittedAt;
    expect(admitted).toBeGreaterThanOrEqual(0);
    step();
    expect(a.admittedAt).toBe(admitted);
    expect(scheduler.steps).toBe(2);
  });

  it("keeps the first admission's time when a preempted sequence is admitted again", () => {
    // 4 blocks of 4: a and b hold two each; a's decode row preempts b, which comes back once a is dropped.
    const { scheduler, add, step } = setup(4, 4);
    const a = add(8);
    const b = add(8);
    step();
    const admitted = b.admittedAt;
    step();
    expect(b).toMatchObject({ state: "waiting", preemptions: 1 });
    scheduler.drop(a);
    step();
    expect(b.state).toBe("running");
    expect(b.admittedAt).toBe(admitted);
  });
});

describe("scheduler: no starvation", () => {
  it("stops admitting newer requests once an older one waited agingSteps steps for KV blocks", () => {
    const { scheduler, add, step } = setup(8, 4, { agingSteps: 3 });
    add(16); // 4 blocks, running
    const big = add(20); // 5 blocks: does not fit next to the first
    step();
    const small = add(4); // 1 block: fits, and is let in while big is young
    expect(step().map((r) => r.seq.id)).toEqual([1, 3]);
    expect(scheduler.waiting).toEqual([big]);
    step(); // big has now waited 3 steps: aged
    const late = add(4);
    step();
    expect(scheduler.waiting).toEqual([big, late]); // late fits, but may not overtake big any more
    expect(small.state).toBe("running");
  });

  it("counts a request aged from the step it was queued at: young at agingSteps - 1 steps, aged at agingSteps", () => {
    // Blocks of 64 positions: the running sequence decodes without growing; big (3 blocks) never fits beside it.
    const { scheduler, add, step } = setup(3, 64, { agingSteps: 3 });
    add(60);
    step();
    const big = add(150); // queued at step 1
    step();
    const small = add(4);
    step(); // big has waited 2 steps: still young, small fits and goes ahead
    expect(small.state).toBe("running");
    const late = add(4);
    step(); // big has waited 3 steps: aged, late fits but may not overtake it
    expect(late.state).toBe("waiting");
    expect(scheduler.waiting).toEqual([big, late]);
  });

  it("holds newer requests back behind an aged one whose adapter has no free slot (and is not loading)", () => {
    const { scheduler, slots, add, step } = setup(64, 4, { agingSteps: 0 });
    const blocked = add(4, { adapterId: ADAPTER }); // no slot, not loading: aged at once (agingSteps 0)
    const base = add(4);
    step();
    expect(scheduler.waiting).toEqual([blocked, base]);
    slots.loading.add(ADAPTER); // once it loads, others go ahead again
    expect(step().map((r) => r.seq.id)).toEqual([2]);
  });

  it("treats a preempted sequence as aged at once", () => {
    // 7 blocks: three 8-token prompts hold 6; the decode rows preempt the youngest, which then needs 3 blocks
    // where 1 is free. A newcomer needing 1 block may not overtake it, though agingSteps is far off.
    const { scheduler, add, step } = setup(7, 4, { agingSteps: 1000 });
    add(8);
    add(8);
    const c = add(8);
    step();
    step();
    expect(c.preemptions).toBe(1);
    const d = add(4);
    expect(step().map((r) => r.seq.id)).toEqual([1, 2]);
    expect(scheduler.waiting).toEqual([c, d]);
  });
});

describe("scheduler: options", () => {
  const kv = new BlockAllocator(4, 4);
  const slots = new TestSlots();
  it("defaults, and caps maxRunning at maxBatchTokens", () => {
    expect(new Scheduler(kv, slots).options).toEqual(DEFAULT_SCHEDULER);
    expect(new Scheduler(kv, slots, { maxBatchTokens: 16 }).options).toEqual({
      ...DEFAULT_SCHEDULER,
      maxBatchTokens: 16,
      maxRunning: 16,
    });
  });
  it("refuses bad values by name", () => {
    expect(() => new Scheduler(kv, slots, { maxBatchTokens: 0 })).toThrow(
      "maxBatchTokens must be a positive integer, got 0",
    );
    expect(() => new Scheduler(kv, slots, { maxBatchTokens: 1.5 })).toThrow(
      "maxBatchTokens must be a positive integer, got 1.5",
    );
    expect(() => new Scheduler(kv, slots, { maxRunning: 0 })).toThrow(
      "maxRunning must be an integer in 1..maxBatchTokens, got 0",
    );
    expect(() => new Scheduler(kv, slots, { maxBatchTokens: 8, maxRunning: 9 })).toThrow(
      "maxRunning must be an integer in 1..maxBatchTokens, got 9",
    );
    expect(() => new Scheduler(kv, slots, { maxRunning: 2.5 })).toThrow(/maxRunning must be an integer/);
    expect(() => new Scheduler(kv, slots, { agingSteps: -1 })).toThrow("agingSteps must be an integer >= 0, got -1");
    expect(() => new Scheduler(kv, slots, { agingSteps: 0.5 })).toThrow(/agingSteps must be an integer/);
    expect(new Scheduler(kv, slots, { agingSteps: 0, maxRunning: 1, maxBatchTokens: 1 }).options.agingSteps).toBe(0);
  });
});

describe("scheduler: dropping", () => {
  it("takes a waiting sequence out of the queue (a request cancelled before it ran)", () => {
    const { scheduler, add, step } = setup(64, 4, { maxRunning: 1 });
    const running = add(4);
    const queued = add(4);
    step();
    expect(scheduler.waiting).toEqual([queued]);
    scheduler.drop(queued);
    expect(queued.state).toBe("finished");
    expect(scheduler.waiting).toEqual([]);
    expect(scheduler.running).toEqual([running]);
  });
});
