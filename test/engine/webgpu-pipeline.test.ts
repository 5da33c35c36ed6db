// The webgpu step pipeline (step-ahead.ts): the next decode step recorded while the device runs the current one,
// sent with its tables when the engine asks for a step those commands compute. Held to the same backend without the
// pipeline (pipeline: false) on stories260K, on lavapipe where there is no GPU: every sampled id equal, through the
// cases that must drop a recording (a sequence leaving, a forward() between, a slot emptied) and the ones that must
// not (a block table growing: new data, same commands; a slot's adapter replaced: same commands, new weights).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SamplingParams, SequenceStep } from "../../node/engine/backend/backend.ts";
import {
  createWebGpuBackend,
  webgpuAvailable,
  type WebGpuBackend,
} from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";
import { demoAdapter, stories } from "../helpers/stories.ts";

const OPTIONS = { numBlocks: 48, blockSize: 16, adapterSlots: 2, maxRank: 16 };
const model = await stories();
const prompt = model.tokenizer.encode("Once upon a time", { bos: true } as never) as unknown as number[];

let piped: WebGpuBackend;
let plain: WebGpuBackend;

beforeAll(async () => {
  expect(await webgpuAvailable(), "no WebGPU adapter: scripts/setup.sh fetches lavapipe").toBe(true);
  piped = await createWebGpuBackend(model.weights, OPTIONS);
  plain = await createWebGpuBackend(model.weights, { ...OPTIONS, pipeline: false });
  for (const backend of [piped, plain]) {
    await backend.setAdapter(0, await demoAdapter("dragon", OPTIONS.maxRank));
    await backend.setAdapter(1, await demoAdapter("ocean", OPTIONS.maxRank));
  }
});
afterAll(async () => {
  await piped?.close();
  await plain?.close();
});

interface Seq {
  tokens: number[];
  blocks: number[];
  slot: number;
  params: SamplingParams;
  rng: () => number;
  /** Steps it runs before it leaves the batch. */
  steps: number;
}

/**
 * Runs the sequences to their ends on one backend as the engine would: a block appended only when the next
 * position needs it, a sequence leaving when its steps are done, `between(step)` called between steps.
 */
async function run(
  backend: WebGpuBackend,
  between: (step: number, backend: WebGpuBackend) => Promise<void>,
): Promise<number[][]> {
  let nextBlock = 0;
  const seqs: Seq[] = [
    { slot: -1, params: { temperature: 0, topK: 0, topP: 1 }, steps: 40 },
    { slot: 0, params: { temperature: 0.9, topK: 0, topP: 0.9 }, steps: 25 },
    { slot: 1, params: { temperature: 1, topK: 20, topP: 1 }, steps: 40 },
  ].map((s, i) => ({ ...s, tokens: [...prompt], blocks: [], rng: createRng(7 + i) }));
  const live = new Map<Seq, number>(seqs.map((s) => [s, 0]));
  let computed = seqs.map(() => 0);
  for (let step = 0; live.size > 0; step++) {
    const batch = seqs.filter((s) => live.has(s));
    const steps: SequenceStep[] = batch.map((s) => {
      const from = computed[seqs.indexOf(s)];
      while (s.blocks.length * OPTIONS.blockSize < s.tokens.length) s.blocks.push(nextBlock++);
      return { tokens: s.tokens.slice(from), position: from, blockTable: [...s.blocks], slot: s.slot };
    });
    const ids = await backend.sample(
      steps,
      batch.map((s) => s.params),
      Float32Array.from(batch, (s) => s.rng()),
    );
    computed = seqs.map((s, i) => (live.has(s) ? s.tokens.length : computed[i]));
    batch.forEach((s, i) => {
      s.tokens.push(ids[i]);
      const done = live.get(s)! + 1;
      if (done >= s.steps) live.delete(s);
      else live.set(s, done);
    });
    await between(step, backend);
  }
  return seqs.map((s) => s.tokens.slice(prompt.length));
}

describe("webgpu step pipeline", () => {
  it("samples what the backend without it samples, across sequences leaving and block tables growing, and sends every decode step as recorded but the one after the batch changed", async () => {
    const before = piped.stepsRecordedAhead;
    const none = async (): Promise<void> => {};
    const a = await run(piped, none);
    const b = await run(plain, none);
    expect(a).toEqual(b);
    expect(a.map((t) => t.length)).toEqual([40, 25, 40]);
    // 39 decode steps, each recorded while the step before ran: all sent as recorded (block tables growing only
    // change data) but the one after the second sequence leaves (the batch changed).
    expect(piped.stepsRecordedAhead - before).toBe(38);
    expect(plain.stepsRecordedAhead).toBe(0);
  });

  it("a forward() or an emptied slot between steps drops the recording; a replaced adapter is used at once", async () => {
    const dragon = await demoAdapter("dragon", OPTIONS.maxRank);
    const robot = await demoAdapter("robot", OPTIONS.maxRank);
    const between = async (step: number, backend: WebGpuBackend): Promise<void> => {
      if (step === 5) await backend.forward([{ tokens: [1, 2, 3], position: 0, blockTable: [47], slot: 0 }]);
      if (step === 9) await backend.setAdapter(0, robot);
      if (step === 14) await backend.setAdapter(1, null);
    };
    try {
      const a = await run(piped, between);
      const b = await run(plain, between);
      expect(a).toEqual(b);
    } finally {
      for (const backend of [piped, plain]) {
        await backend.setAdapter(0, dragon);
        await backend.setAdapter(1, await demoAdapter("ocean", OPTIONS.maxRank));
      }
    }
  });
});
