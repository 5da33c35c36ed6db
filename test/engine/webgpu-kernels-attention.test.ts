// When attention splits along the context (flash-decoding, ops.ts attentionSplitPlan), and the split inside the
// backend on stories260K against the cpu backend: logits within LOGIT_TOL (the parity tolerance of
// webgpu.test.ts), the step profile showing the split kernels ran. The kernels themselves are held to the
// reference in test/kernels/attention.test.ts.
import { describe, expect, it } from "vitest";
import type { SequenceStep } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { createWebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { relDiff } from "../../scripts/gpu/parity-lib.ts";
import { demoAdapter, stories } from "../helpers/stories.ts";
import { kernelsOfStep } from "./webgpu-kernels-helpers.ts";

const LOGIT_TOL = 1e-4;

describe("when attention splits", () => {
  it("splits passes of few rows and long contexts only, into partitions that cover the context", () => {
    const { minWork, maxRows, maxParts, minPart } = op.ATTENTION_SPLIT;
    expect(op.attentionSplitPlan(1, minWork / 64 - 1, 64)).toBeNull();
    expect(op.attentionSplitPlan(1, minWork / 8 - 1, 8)).toBeNull();
    expect(op.attentionSplitPlan(maxRows + 1, 4096, 64)).toBeNull();
    expect(op.attentionSplitPlan(1, 2 * minPart - 1, 1024)).toBeNull(); // too short for two partitions
    expect(op.attentionSplitPlan(1, 2 * minPart - 1, 8, true)).toBeNull();
    expect(op.attentionSplitPlan(maxRows + 1, 4096, 8, true)).toBeNull();
    expect(op.attentionSplitPlan(1, 2 * minPart, 8, true)).toEqual({ nParts: 2, partLen: minPart });
    for (const [rows, context, headDim] of [
      [1, minWork / 64, 64],
      [1, minWork / 8, 8],
      [maxRows, 450, 128],
      [3, 4096, 64],
      [1, 100_000, 64],
    ]) {
      const plan = op.attentionSplitPlan(rows, context, headDim)!;
      expect(plan.nParts).toBeGreaterThan(1);
      expect(plan.nParts).toBeLessThanOrEqual(maxParts);
      expect(plan.partLen).toBeGreaterThanOrEqual(minPart);
      expect(plan.nParts * plan.partLen).toBeGreaterThanOrEqual(context);
      expect((plan.nParts - 1) * plan.partLen).toBeLessThan(context); // no partition starts past the context
    }
  });

  it("refuses a split its partials buffer cannot hold", () => {
    const args = { T: 17, nHeads: 1, nKvHeads: 1, headDim: 8, kvDim: 8, ldq: 8, ldo: 8, blockSize: 16 };
    const sites = { split: null!, reduce: null! };
    expect(() => op.attentionSplit(null!, sites, args, { nParts: 2, partLen: 300 })).toThrow(RangeError);
    expect(() => op.attentionSplit(null!, sites, { ...args, T: 1 }, { nParts: 17, partLen: 30 })).toThrow(/17/);
  });
});

describe("the backend with split attention", () => {
  it("matches the cpu backend on decode rows of 451, 301 and 21 positions in one batch", async () => {
    const model = await stories();
    const options = { numBlocks: 80, blockSize: 16, adapterSlots: 1, maxRank: 16 };
    const gpu = await createWebGpuBackend(model.weights, { ...options, attention: "split" });
    const cpu = createCpuBackend(model.weights, options);
    try {
      expect(gpu.kernels.attention).toBe("split");
      const adapter = await demoAdapter("dragon", options.maxRank);
      await gpu.setAdapter(0, adapter);
      await cpu.setAdapter(0, adapter);
      const text = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 1 + ((i * 37 + seed) % 500));
      const table = (first: number) => Array.from({ length: 29 }, (_, i) => first + i);
      const seqs: SequenceStep[] = [
        { tokens: text(450, 0), position: 0, blockTable: table(0), slot: -1 },
        { tokens: text(300, 7), position: 0, blockTable: table(29), slot: 0 },
        { tokens: text(20, 3), position: 0, blockTable: table(58).slice(0, 2), slot: -1 },
      ];
      // The prefills (too many rows to split) fill the KV pools of both backends.
      for (const s of seqs) {
        await gpu.forward([s]);
        await cpu.forward([s]);
      }
      let step = seqs.map((s) => ({ ...s, tokens: [42], position: s.tokens.length }));
      // Head dimension 8: the threshold (ATTENTION_SPLIT.minWork) would wait for 2048 positions; "split" forces it.
      expect(op.attentionSplitPlan(step.length, 451, model.weights.config.headDim)).toBeNull();
      expect(op.attentionSplitPlan(step.length, 451, model.weights.config.headDim, true)).not.toBeNull();
      for (let i = 0; i < 3; i++) {
        const g = await gpu.forward(step);
        expect(relDiff(g, await cpu.forward(step)), `decode step ${i}`).toBeLessThanOrEqual(LOGIT_TOL);
        step = step.map((s) => ({ ...s, tokens: [100 + i], position: s.position + 1 }));
      }
      expect(await kernelsOfStep(gpu, step)).toContain("attention-split");
      // The third sequence alone: 25 positions, too short for two partitions.
      expect(await kernelsOfStep(gpu, [step[2]])).not.toContain("attention-split");
    } finally {
      await gpu.close();
    }
  });
});
