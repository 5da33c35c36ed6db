// The simd backend held to the cpu reference.
// Tolerances: every logit within LOGIT_TOL x max(1, max |cpu logit|) of the reference on the same weights (the
// reference dequantizes quantized files to float32; the kernels decode the same blocks), and identical greedy
// tokens on stories260K with every demo adapter. Thread counts change no bit: each output element is summed in
// the same order whichever worker computes it. Pass splits change no bit except where a product has one x row
// (the GEMV kernel sums in another order than the multi-row tile): within SPLIT_TOL there.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import type { Backend, SequenceStep } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import { autoBackend, createBackend, deviceSized } from "../../node/engine/backend/select.ts";
import { createSimdBackend } from "../../node/engine/backend/simd/simd-backend.ts";
import { findAdapter } from "../../node/engine/backend/webgpu/device.ts";
import { randomModel } from "../../node/engine/formats/random-model.ts";
import { WEIGHT_DTYPES } from "../../node/engine/formats/weight-codec.ts";
import { plainArchitecture, type LinearTarget, type ModelConfig } from "../../node/engine/model/config.ts";
import { DEMO_ADAPTERS, demoAdapter, stories, STORIES_DIR } from "../helpers/stories.ts";
import { openEngine } from "../../node/engine/runtime/open-engine.ts";
import { argmax, relDiff } from "../../scripts/gpu/parity-lib.ts";
import { randomLora } from "../../scripts/bench/random-adapters.ts";

const LOGIT_TOL = 1e-4;
const SPLIT_TOL = 1e-5;
const OPTIONS = { numBlocks: 96, blockSize: 16, adapterSlots: 5, maxRank: 16 };
const STEPS = 40;
const ROOT = join(import.meta.dirname, "../..");

const model = await stories();
const config = model.weights.config;
const prompt = model.tokenizer.encode("Once upon a time", { bos: true });

/** A random in-memory adapter of another rank on some targets only: mixed ranks in one batch. */
const oddAdapter = (cfg: ModelConfig, rank: number, targets: LinearTarget[], seed: number): LoraAdapter =>
  randomLora(cfg, { rank, targets, seed }).adapter;

const table = (first: number, n = 6) => Array.from({ length: n }, (_, i) => first + i);

/** Greedy decoding of several sequences together, every step on both backends; returns each side's tokens. */
async function greedyTogether(
  a: Backend,
  b: Backend,
  slots: number[],
  steps: number,
): Promise<{ tokens: number[][]; worst: number }> {
  const tokens = slots.map(() => [...prompt]);
  let worst = 0;
  let pending: SequenceStep[] = slots.map((slot, s) => ({
    tokens: [...prompt],
    position: 0,
    blockTable: table(6 * s),
    slot,
  }));
  for (let step = 0; step < steps; step++) {
    const [la, lb] = [await a.forward(pending), await b.forward(pending)];
    worst = Math.max(worst, relDiff(la, lb));
    pending = pending.map((seq, s) => {
      const next = argmax(lb.subarray(s * config.vocabSize, (s + 1) * config.vocabSize));
      expect(argmax(la.subarray(s * config.vocabSize, (s + 1) * config.vocabSize)), `sequence ${s} step ${step}`).toBe(
        next,
      );
      tokens[s].push(next);
      return { ...seq, tokens: [next], position: seq.position + seq.tokens.length };
    });
  }
  return { tokens, worst };
}

describe("simd backend on stories260K", () => {
  let simd: Backend;
  let cpu: Backend;
  const adapters: LoraAdapter[] = [];

  beforeAll(async () => {
    simd = await createSimdBackend(model.weights, { ...OPTIONS, threads: 2 });
    cpu = createCpuBackend(model.weights, OPTIONS);
    for (const name of DEMO_ADAPTERS) adapters.push(await demoAdapter(name, OPTIONS.maxRank));
    adapters.push(oddAdapter(config, 3, ["q", "v", "down"], 4));
    for (let slot = 0; slot < adapters.length; slot++) {
      await simd.setAdapter(slot, adapters[slot]);
      await cpu.setAdapter(slot, adapters[slot]);
    }
  });
  afterAll(async () => {
    await simd?.close();
  });

  it("greedy tokens equal the reference's: no adapter, each demo adapter, a rank-3 one, batched", async () => {
    const { tokens, worst } = await greedyTogether(simd, cpu, [-1, 0, 1, 2, 3], STEPS);
    expect(worst).toBeLessThan(LOGIT_TOL);
    expect(tokens.every((t) => t.length === prompt.length + STEPS)).toBe(true);
  });

  it("prefill and decode rows in one step, in passes of 5 rows: the single pass's logits", async () => {
    const split = await createSimdBackend(model.weights, { ...OPTIONS, threads: 3, maxRowsPerPass: 5 });
    try {
      for (const [slot, adapter] of adapters.entries()) await split.setAdapter(slot, adapter);
      const prefill: SequenceStep[] = [
        { tokens: prompt, position: 0, blockTable: table(0), slot: 1 },
        { tokens: prompt.slice(0, 3), position: 0, blockTable: table(6), slot: -1 },
      ];
      const mixed: SequenceStep[] = [
        { tokens: [300], position: prompt.length, blockTable: table(0), slot: 1 },
        { tokens: [42, 43, 44, 45, 46, 47, 48], position: 3, blockTable: table(6), slot: -1 },
        { tokens: prompt, position: 0, blockTable: table(12), slot: 3 },
      ];
      for (const backend of [simd, split, cpu]) await backend.forward(prefill);
      const [one, many, ref] = [await simd.forward(mixed), await split.forward(mixed), await cpu.forward(mixed)];
      // The last pass holds one sequence's last row: its classifier product is a GEMV.
      expect(relDiff(many, one)).toBeLessThan(SPLIT_TOL);
      expect(relDiff(one, ref)).toBeLessThan(LOGIT_TOL);
    } finally {
      await split.close();
    }
  });

  it("samples as the reference does from the same draws", async () => {
    const steps: SequenceStep[] = [0, 1].map((s) => ({
      tokens: prompt,
      position: 0,
      blockTable: table(30 + 6 * s),
      slot: s - 1,
    }));
    const params = [
      { temperature: 0.8, topK: 40, topP: 0.9 },
      { temperature: 0, topK: 0, topP: 1 },
    ];
    const uniforms = Float32Array.of(0.37, 0.5);
    expect([...(await simd.sample(steps, params, uniforms))]).toEqual([...(await cpu.sample(steps, params, uniforms))]);
  });

  it("refuses what the reference refuses, by name", async () => {
    await expect(simd.setAdapter(0, oddAdapter(config, 32, ["q"], 1))).rejects.toThrow(
      "rank 32 exceeds the slot rank 16",
    );
    await expect(simd.setAdapter(7, null)).rejects.toThrow("adapter slot 7 outside 0..4");
    await expect(
      simd.forward([{ tokens: [config.vocabSize], position: 0, blockTable: [0], slot: -1 }]),
    ).rejects.toThrow("outside the vocabulary");
  });
});

describe("simd backend on random models, every weight format", () => {
  const tiny: ModelConfig = {
    dim: 128,
    hiddenDim: 256,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 32,
    vocabSize: 512,
    maxSeqLen: 128,
    normEps: 1e-5,
    ropeTheta: 10000,
  };
  const options = { numBlocks: 16, blockSize: 8, adapterSlots: 2, maxRank: 8 };
  for (const dtype of WEIGHT_DTYPES) {
    it(`${dtype}: logits within ${LOGIT_TOL} of the reference on the same weights, kept ${dtype}`, async () => {
      const { weights } = randomModel(tiny, 11, { tiedClassifier: false, scale: 0.08 }, dtype);
      const simd = await createSimdBackend(weights, { ...options, threads: 2 });
      const cpu = createCpuBackend(weights, options);
      try {
        const adapter = oddAdapter(tiny, 8, ["q", "k", "v", "o", "gate", "up", "down"], 2);
        await simd.setAdapter(1, adapter);
        await cpu.setAdapter(1, adapter);
        const steps: SequenceStep[] = [
          { tokens: [5, 9, 200, 33, 7, 480, 1, 2, 3, 4, 5], position: 0, blockTable: [0, 1], slot: 1 },
          { tokens: [17, 18], position: 0, blockTable: [2], slot: -1 },
        ];
        expect(relDiff(await simd.forward(steps), await cpu.forward(steps))).toBeLessThan(LOGIT_TOL);
        const decode: SequenceStep[] = [
          { ...steps[0], tokens: [99], position: 11 },
          { ...steps[1], tokens: [100], position: 2 },
        ];
        expect(relDiff(await simd.forward(decode), await cpu.forward(decode))).toBeLessThan(LOGIT_TOL);
        expect(simd.device).toContain(`${dtype} weights`);
      } finally {
        await simd.close();
      }
    });
  }

  it("holds quantized weights at their size: q4_0 saves about 7/8 of the f32 weights' memory", async () => {
    const big: ModelConfig = { ...tiny, dim: 256, headDim: 64, hiddenDim: 512, vocabSize: 4096 };
    const sizes: number[] = [];
    for (const dtype of ["f32", "q4_0"] as const) {
      const backend = await createSimdBackend(randomModel(big, 1, {}, dtype).weights, {
        ...options,
        adapterSlots: 0,
        maxRank: 0,
        threads: 1,
      });
      sizes.push(backend.memoryBytes);
      await backend.close();
    }
    const f32Weights =
      4 *
      (big.vocabSize * big.dim +
        big.nLayers * (2 * big.dim * big.dim + 2 * big.dim * 128 + 3 * big.dim * big.hiddenDim));
    expect(sizes[0] - sizes[1]).toBeGreaterThan(f32Weights * (1 - 18 / 128) * 0.95);
  });

  it("refuses, by name, an architecture beyond plain LLaMA instead of computing something else", async () => {
    const { weights } = randomModel(tiny, 3);
    const qwen = { ...weights, config: { ...tiny, arch: { ...plainArchitecture(tiny), family: "qwen2" as const } } };
    await expect(createSimdBackend(qwen, options)).rejects.toThrow("simd backend: qwen2 departures from plain LLaMA");
    const auto = await createBackend("auto", qwen, options); // auto passes such a model to a backend that computes it
    expect(auto.kind).not.toBe("simd");
    await auto.close();
  });

  it("runs on 1 and on 3 threads to the same bits", async () => {
    const { weights } = randomModel(tiny, 3, {}, "q8_0");
    const results: Float32Array[] = [];
    for (const threads of [1, 3]) {
      const backend = await createSimdBackend(weights, { ...options, threads });
      results.push(
        await backend.forward([{ tokens: [1, 2, 3, 4, 5, 6, 7, 8, 9], position: 0, blockTable: [3, 4], slot: -1 }]),
      );
      await backend.close();
    }
    expect(Buffer.from(results[1].buffer).equals(Buffer.from(results[0].buffer))).toBe(true);
  });
});

describe("simd backend build and selection", () => {
  it("the committed kernels.wasm is what scripts/build-simd-kernels.sh makes of kernels/cpu/simd.ts", () => {
    const out = join(ROOT, ".cache", `simd-kernels-check-${process.pid}.wasm`);
    execFileSync("bash", [join(ROOT, "scripts/build-simd-kernels.sh"), out], { stdio: "pipe" });
    expect(readFileSync(out).equals(readFileSync(join(ROOT, "node/engine/backend/simd/kernels.wasm")))).toBe(true);
  });

  it("auto picks simd when the only WebGPU adapter is a software one (or there is none), webgpu on a GPU", async () => {
    const adapter = await findAdapter();
    const name = adapter ? `${adapter.info.vendor} ${adapter.info.architecture} ${adapter.info.description}` : "";
    const software = adapter === null || /llvmpipe|lavapipe|swiftshader/i.test(name);
    expect(await autoBackend()).toBe(software ? "simd" : "webgpu");
  });

  it("a hardware GPU sizes the KV pool and adapter slots from its memory; elsewhere four contexts and four slots", async () => {
    const adapter = await findAdapter();
    expect(deviceSized(null)).toBe(false);
    const opened = await openEngine({ model: STORIES_DIR, backend: adapter ? "webgpu" : "cpu" });
    try {
      const { kv, tiers } = opened.engine.stats();
      const context = Math.ceil(opened.model.weights.config.maxSeqLen / kv.blockSize);
      if (adapter !== null && deviceSized(adapter)) {
        // Up to a full context and a slot for each of the scheduler's 64 sequences, as the memory allows.
        expect(kv.totalBlocks).toBeGreaterThan(4 * context);
        expect(tiers.gpu.slots).toBeGreaterThan(4);
      } else {
        expect(kv.totalBlocks).toBe(4 * context);
        expect(tiers.gpu.slots).toBe(4);
      }
    } finally {
      await opened.close();
    }
  });
});
