import { describe, expect, it } from "vitest";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import type { SequenceStep } from "../../node/engine/backend/backend.ts";
import { InvalidRequestError } from "../../node/engine/errors.ts";
import type { RequestStream } from "../../node/engine/runtime/request-stream.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";
import { TextStream } from "../../node/engine/text-stream.ts";
import { DEMO_ADAPTERS, demoAdapter, STORIES_DIR, stories } from "../helpers/stories.ts";
import {
  closedAfterEachTest,
  collect,
  expectIdle,
  hooked,
  openOracle,
  runAlone,
  type Collected,
  type EngineOptions,
  type TestBackend,
} from "./runtime-helpers.ts";
import { join } from "node:path";

const PROMPTS = [
  "Once upon a time",
  "The dragon",
  "Lily and Max went to the",
  "One day, a little fish",
  "The sun was",
  "Tom had a big red ball. He",
];

const newEngine = closedAfterEachTest();
const BACKENDS: readonly TestBackend[] = ["cpu", "webgpu", "simd"];

async function engineWith(options: EngineOptions = {}) {
  const made = await newEngine(options);
  const ids: Record<string, LoraAdapter> = {};
  for (const name of DEMO_ADAPTERS) {
    const info = await made.engine.adapters.import(join(STORIES_DIR, "adapters", name));
    ids[name] = await demoAdapter(name);
    expect(info.id).toBe(ids[name].id);
  }
  return { ...made, adapters: ids };
}

describe("continuous batching", () => {
  // The webgpu backend refuses overlapping calls: there, a step and an adapter upload that were not serialized
  // (runtime/device-lock.ts) fail the requests, where the cpu backend would not notice.
  for (const backend of BACKENDS) {
    it(`on ${backend}: gives each request, arriving at random steps with mixed adapters and preempted by a tiny KV pool, the output it has alone`, async () => {
      const model = await stories();
      const rng = createRng(42);
      type Planned = {
        step: number;
        adapter: LoraAdapter | null;
        tokenIds: number[];
        maxTokens: number;
        temperature: number;
        topP?: number;
        seed?: number;
      };
      const adapters = await Promise.all(DEMO_ADAPTERS.map((n) => demoAdapter(n)));
      const planned: Planned[] = Array.from({ length: 14 }, (_, i) => ({
        step: i === 0 ? 0 : Math.floor(rng() * 60),
        adapter: [null, ...adapters][Math.floor(rng() * 4)],
        tokenIds: model.tokenizer.encode(PROMPTS[Math.floor(rng() * PROMPTS.length)], { bos: true }),
        maxTokens: 20 + Math.floor(rng() * 50),
        // Most greedy; some sampled with their own seed (one draw per token keeps them batch-independent too).
        ...(i % 4 === 3 ? { temperature: 0.9, topP: 0.9, seed: 1000 + i } : { temperature: 0 }),
      }));
      planned.sort((a, b) => a.step - b.step);

      const streams: { plan: Planned; stream: RequestStream }[] = [];
      let next = 0;
      const submitDue = (step: number) => {
        for (; next < planned.length && planned[next].step <= step; next++) {
          const p = planned[next];
          streams.push({
            plan: p,
            stream: engine.submit({
              adapterId: p.adapter?.id ?? null,
              tokenIds: p.tokenIds,
              maxTokens: p.maxTokens,
              temperature: p.temperature,
              topP: p.topP,
              seed: p.seed,
            }),
          });
        }
      };
      // 30 blocks of 4 positions hold ~120 positions for up to 14 sequences of up to ~80: preemption is certain.
      // 2 slots for 3 adapters: slots are swapped while others run.
      let mixed = 0; // steps whose rows span the base model and two adapters (SGMV segments)
      const before = (n: number, steps: readonly SequenceStep[]) => {
        if (new Set(steps.map((s) => s.slot)).size >= 3) mixed++;
        submitDue(n);
      };
      const { engine } = await engineWith({
        backend,
        numBlocks: 30,
        blockSize: 4,
        adapterSlots: 2,
        wrap: (b) => hooked(b, { before }),
        scheduler: { maxBatchTokens: 24 },
      });
      submitDue(0);
      const results: Collected[] = [];
      while (results.length < planned.length) {
        const batch = streams.slice(results.length);
        results.push(...(await Promise.all(batch.map((s) => collect(s.stream)))));
        submitDue(Infinity); // arrivals after the engine went idle
      }
      expect(engine.stats().preemptions).toBeGreaterThan(0);
      expect(mixed).toBeGreaterThan(0);
      expect(results.some((r) => r.usage.preemptions > 0)).toBe(true);
      const oracle = await openOracle(backend);
      try {
        for (const [i, { plan }] of streams.entries()) {
          const alone = await oracle.run(plan.adapter, plan);
          expect(results[i].tokenIds, `request ${i}`).toEqual(alone.tokenIds);
          expect(results[i].text).toBe(alone.text);
        }
      } finally {
        await oracle.close();
      }
      expectIdle(engine);
    });
  }

  it("cuts the text at a stop string and streams pieces that add up to it", async () => {
    const { engine } = await engineWith();
    const tokenIds = (await stories()).tokenizer.encode("Once upon a time", { bos: true });
    const [stopped, plain] = await Promise.all([
      collect(engine.submit({ adapterId: null, tokenIds, maxTokens: 40, temperature: 0, stop: ["Lily"] })),
      collect(engine.submit({ adapterId: null, tokenIds, maxTokens: 40, temperature: 0 })),
    ]);
    expect(stopped.usage.finishReason).toBe("stop");
    expect(stopped.text).toBe(plain.text.slice(0, plain.text.indexOf("Lily")));
    expect(stopped.tokenIds).toEqual((await runAlone(null, { tokenIds, maxTokens: 40, stop: ["Lily"] })).tokenIds);
    expect(plain.usage.finishReason).toBe("length");
    expect(plain.usage.timings.ttftMs).toBeLessThanOrEqual(plain.usage.timings.totalMs);
  });

  it("ends at EOS", async () => {
    const { engine } = await engineWith();
    const result = await collect(engine.submit({ adapterId: null, prompt: "", maxTokens: 500, temperature: 0 }));
    expect(result.usage.finishReason).toBe("eos");
    expect(result.tokenIds).toEqual((await runAlone(null, { tokenIds: [1], maxTokens: 500 })).tokenIds);
  });

  it("does not hold others up while an adapter loads", async () => {
    const { engine, adapters } = await engineWith({ wrap: (b) => hooked(b, { uploadDelayMs: 300 }) });
    await engine.adapters.unload(adapters.dragon.id);
    const order: string[] = [];
    const slow = collect(
      engine.submit({ adapterId: adapters.dragon.id, prompt: "Once", maxTokens: 5, temperature: 0 }),
    ).then(() => order.push("adapter"));
    const fast = collect(engine.submit({ adapterId: null, prompt: "Once", maxTokens: 5, temperature: 0 })).then(() =>
      order.push("base"),
    );
    await Promise.all([slow, fast]);
    expect(order).toEqual(["base", "adapter"]);
  });

  // Starvation bounds are counted in engine steps, not in time or in others' completions: aging is defined in
  // steps (agingSteps), so the bound follows from the parameters whatever the machine's load.
  it("lets no request starve: one for another adapter gets the only slot under a steady stream for the busy one", async () => {
    const agingSteps = 8;
    const { engine, adapters } = await engineWith({ adapterSlots: 1, scheduler: { agingSteps } });
    await engine.adapters.load(adapters.dragon.id);
    let steps = 0;
    engine.on("step", () => {
      steps++;
    });
    const busy = () =>
      collect(engine.submit({ adapterId: adapters.dragon.id, prompt: "The dragon", maxTokens: 12, temperature: 0 }));
    let rareDone = false;
    const keepBusy = async () => {
      for (let n = 0; !rareDone && n < 200; n++) await busy();
    };
    const streams = [keepBusy(), keepBusy()];
    await engine.once("step", () => steps >= 3); // the busy stream holds the slot
    const submittedAt = steps;
    const rare = collect(
      engine.submit({ adapterId: adapters.robot.id, prompt: "Once", maxTokens: 5, temperature: 0 }),
    ).then((r) => {
      rareDone = true;
      return { result: r, steps: steps - submittedAt };
    });
    streams.push(keepBusy());
    const [done] = await Promise.all([rare, ...streams]);
    // It ages (8 steps), the busy requests already running finish (at most 12 steps: one prefill with the
    // first token, 11 decodes) while no newer one is let in, then it runs its own 5 steps.
    expect(done.steps).toBeLessThanOrEqual(agingSteps + 12 + 5);
    const prompt = (await stories()).tokenizer.encode("Once", { bos: true });
    expect(done.result.tokenIds).toEqual((await runAlone(adapters.robot, { tokenIds: prompt, maxTokens: 5 })).tokenIds);
  });

  it("lets no request starve for KV blocks: a long prompt gets in under a steady stream of short requests", async () => {
    // 48 blocks of 4. Six clients keep short requests (20 prompt tokens, 5 blocks; at most 8) coming without
    // pause, of lengths that never all end in the same step, so at least five run and hold 25 blocks or more:
    // a 100-token prompt (25 blocks) never finds room unless newer requests stop overtaking it once it aged.
    const agingSteps = 8;
    const { engine } = await engineWith({ numBlocks: 48, blockSize: 4, scheduler: { agingSteps } });
    const short = [1, ...Array.from({ length: 19 }, (_, i) => 200 + i)];
    const long = [1, ...Array.from({ length: 99 }, (_, i) => 300 + (i % 50))];
    let steps = 0;
    engine.on("step", () => {
      steps++;
    });
    let longDone = false;
    const keepBusy = async (maxTokens: number) => {
      for (let n = 0; !longDone && n < 300; n++)
        await engine.submit({ adapterId: null, tokenIds: short, maxTokens, temperature: 0 }).result;
    };
    const clients = [5, 6, 7, 8, 9, 11].map(keepBusy);
    await engine.once("step", () => steps >= 3);
    const submittedAt = steps;
    const big = engine.submit({ adapterId: null, tokenIds: long, maxTokens: 8, temperature: 0 }).result.then((c) => {
      longDone = true;
      return { result: c, steps: steps - submittedAt };
    });
    const [done] = await Promise.all([big, ...clients]);
    // It ages (8 steps), the short requests running drain (at most 11 steps each, no newer one admitted), then
    // its prefill (one step, within the default 512-token budget) and 7 decode steps.
    expect(done.steps).toBeLessThanOrEqual(agingSteps + 11 + 8);
    expect(done.result.tokenIds).toEqual((await runAlone(null, { tokenIds: long, maxTokens: 8 })).tokenIds);
    expectIdle(engine);
  });
});

describe("cancellation", () => {
  it("frees blocks and the slot pin at once, mid-stream and while queued, and the engine keeps serving", async () => {
    const { engine, adapters } = await engineWith({ scheduler: { maxRunning: 1 } });
    const controller = new AbortController();
    const queued = new AbortController();
    const running = engine.submit({
      adapterId: adapters.ocean.id,
      prompt: "Once upon a time",
      maxTokens: 200,
      temperature: 0,
      signal: controller.signal,
    });
    const waiting = engine.submit({
      adapterId: adapters.robot.id,
      prompt: "Once",
      maxTokens: 50,
      temperature: 0,
      signal: queued.signal,
    });
    let tokens = 0;
    let usage;
    for await (const event of running) {
      if (event.type === "token" && ++tokens === 5) {
        const before = engine.stats();
        expect(before.kv.freeBlocks).toBeLessThan(before.kv.totalBlocks);
        expect(before.slots.find((s) => s.adapterId === adapters.ocean.id)!.pins).toBe(1);
        expect(before.queue.waiting).toBe(1);
        queued.abort();
        controller.abort();
        expectIdle(engine); // synchronously: nothing held any more
      }
      if (event.type === "usage") usage = event.usage;
    }
    expect(usage!.finishReason).toBe("cancelled");
    expect(usage!.completionTokens).toBeGreaterThanOrEqual(5);
    expect((await waiting.result).usage.finishReason).toBe("cancelled");
    const after = await collect(
      engine.submit({ adapterId: adapters.ocean.id, prompt: "Once upon a time", maxTokens: 10, temperature: 0 }),
    );
    expect(after.usage.finishReason).toBe("length");
    expectIdle(engine);
    const pre = new AbortController();
    pre.abort();
    expect(
      (await engine.submit({ adapterId: null, prompt: "x", maxTokens: 5, signal: pre.signal }).result).usage
        .finishReason,
    ).toBe("cancelled");
  });
});

describe("bad input", () => {
  it("gets a clear InvalidRequestError from submit while the other requests finish", async () => {
    const { engine, adapters } = await engineWith();
    const tokenIds = (await stories()).tokenizer.encode("Once upon a time", { bos: true });
    const good = [null, adapters.dragon.id].map((adapterId) =>
      engine.submit({ adapterId, tokenIds, maxTokens: 30, temperature: 0 }),
    );
    const bad: [Record<string, unknown>, string, RegExp][] = [
      [{ adapterId: "0x" + "ab".repeat(32) }, "adapter", /is not registered/],
      [{ adapterId: "dragon" }, "adapter", /64 lowercase hex/],
      [{ tokenIds: Array.from({ length: 600 }, () => 5) }, "prompt", /has 600 tokens, the context holds 512/],
      [{ maxTokens: 600 }, "max_tokens", /exceeds the limit 512/],
      [{ maxTokens: 510 }, "max_tokens", /exceeds the context of 512/],
      [{ maxTokens: -1 }, "max_tokens", /non-negative integer/],
      [{ temperature: -0.5 }, "temperature", /finite number >= 0/],
      [{ temperature: NaN }, "temperature", /finite number >= 0/],
      [{ topP: 1.5 }, "top_p", /in \(0, 1\]/],
      [{ topK: -2 }, "top_k", /non-negative integer/],
      [{ seed: -1 }, "seed", /integer in/],
      [{ tokenIds: [1, 9999] }, "tokenIds", /outside the vocabulary/],
      [{ tokenIds: [] }, "tokenIds", /is empty/],
      [{ prompt: "x", tokenIds: [1] }, "prompt", /not both/],
      [{ stop: "Lily" }, "stop", /list of strings/],
    ];
    for (const [override, field, message] of bad) {
      let error: unknown;
      try {
        engine.submit({ adapterId: null, tokenIds, maxTokens: 10, temperature: 0, ...override } as never);
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(override)).toBeInstanceOf(InvalidRequestError);
      expect((error as InvalidRequestError).field).toBe(field);
      expect((error as Error).message).toMatch(message);
    }
    const results = await Promise.all(good.map(collect));
    expect(results[0].tokenIds).toEqual((await runAlone(null, { tokenIds, maxTokens: 30 })).tokenIds);
    expect(results[1].tokenIds).toEqual((await runAlone(adapters.dragon, { tokenIds, maxTokens: 30 })).tokenIds);
    expectIdle(engine);
  });

  it("refuses a request the whole KV pool could never hold", async () => {
    const { engine } = await engineWith({ numBlocks: 8, blockSize: 4 });
    expect(() => engine.submit({ adapterId: null, prompt: "Once upon a time", maxTokens: 40 })).toThrow(
      /exceeds the KV cache \(32 positions\)/,
    );
  });
});

describe("TextStream", () => {
  it("keeps the text equal to decode(prompt + generated) minus the prompt's, step by step, through split UTF-8", async () => {
    const { tokenizer } = await stories();
    const rng = createRng(3);
    const byteToken = (b: number) => 3 + b; // <0x00> .. <0xFF> follow <unk>, <s>, </s>
    for (let trial = 0; trial < 40; trial++) {
      const prompt = tokenizer.encode(["", "Once upon a time", "é", "The dragon said"][trial % 4], {
        bos: trial % 3 !== 0,
      });
      const promptText = tokenizer.decode(prompt);
      const stream = new TextStream(tokenizer, prompt);
      const all = [...prompt];
      let pieces = "";
      for (let i = 0; i < 60; i++) {
        const u = rng();
        // Ordinary pieces, UTF-8 of multi-byte characters split over byte tokens, and stray bytes.
        const tokens =
          u < 0.6
            ? [259 + Math.floor(rng() * 253)]
            : u < 0.9
              ? [...new TextEncoder().encode(["é", "日本", "🐉", "ß"][Math.floor(rng() * 4)])].map(byteToken)
              : [byteToken(128 + Math.floor(rng() * 128))];
        for (const token of tokens) {
          all.push(token);
          const { piece, finish } = stream.push(token);
          expect(finish).toBe(null);
          pieces += piece;
          expect(stream.text).toBe(tokenizer.decode(all).slice(promptText.length));
        }
      }
      expect(pieces + stream.flush()).toBe(stream.text);
    }
  });
});

describe("failures", () => {
  it("fails only the requests of a step the backend could not run, keeps serving, and fails what is left on close", async () => {
    let failAt = -1;
    const { engine } = await engineWith({
      wrap: (b) => ({
        ...b,
        sample: async (steps, params, uniforms) => {
          if (failAt-- === 0) throw new Error("device lost");
          return b.sample(steps, params, uniforms);
        },
      }),
    });
    failAt = 2;
    const doomed = engine.submit({ adapterId: null, prompt: "Once upon a time", maxTokens: 20, temperature: 0 });
    await expect(doomed.result).rejects.toThrow("device lost");
    await expect(
      (async () => {
        for await (const _ of doomed);
      })(),
    ).rejects.toThrow("device lost");
    expectIdle(engine);
    const fine = await collect(
      engine.submit({ adapterId: null, prompt: "Once upon a time", maxTokens: 20, temperature: 0 }),
    );
    expect(fine.tokenIds).toEqual(
      (
        await runAlone(null, {
          tokenIds: (await stories()).tokenizer.encode("Once upon a time", { bos: true }),
          maxTokens: 20,
        })
      ).tokenIds,
    );
    const pending = engine.submit({ adapterId: null, prompt: "Once upon a time", maxTokens: 400, temperature: 0 });
    await engine.close();
    await expect(pending.result).rejects.toThrow("engine closed");
    expect(() => engine.submit({ adapterId: null, prompt: "x", maxTokens: 1 })).toThrow("engine is closed");
  });
});
