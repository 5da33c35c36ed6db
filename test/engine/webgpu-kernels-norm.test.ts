// RMSNorm fused into the split-k matvec (matvec-splitk-norm.wgsl) against the cpu reference: 1 to 4 rows, a norm
// width that is not a multiple of 4, a weight split into two row chunks (only the first writes the normed rows),
// float32 and f16 weights. Then the backend with fused norms on stories260K against the cpu backend, on decode
// rows with and without adapters (the LoRA shrink reads the normed rows the fused kernel writes).
// Tolerances: FUSED_TOL relative to max(1, max |y|) (float32 sums in another order; f16 weights are compared with
// the same halves decoded on the host), LOGIT_TOL for logits (the parity tolerance of webgpu.test.ts).
import { afterAll, describe, expect, it } from "vitest";
import type { SequenceStep } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import { matmul, rmsnorm } from "../../node/engine/backend/cpu/ops.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { uploadMatrix } from "../../node/engine/backend/webgpu/tensors.ts";
import { createWebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { dequantize, quantizeMatrix } from "../../node/engine/formats/weight-codec.ts";
import { relDiff } from "../../scripts/gpu/parity-lib.ts";
import { harness, padded, random, unpadded } from "../kernels/harness.ts";
import { demoAdapter, stories } from "../helpers/stories.ts";
import { kernelsOfStep } from "./webgpu-kernels-helpers.ts";

const FUSED_TOL = 1e-5;
const LOGIT_TOL = 1e-4;
const DIM = 98; // K4 = 25, two zero columns at the end of every row
const LD = 100;
const N = 70;
const EPS = 1e-5;

const rig = await harness();
afterAll(() => rig.close());

const x = random(4 * LD, 1, 3);
for (let m = 0; m < 4; m++) x.fill(0, m * LD + DIM, (m + 1) * LD);
const g = random(DIM, 2);

/** h = rmsnorm(x) and y = h · Wᵀ for M rows by the cpu reference ops (w: [N, DIM] as decoded); h padded to LD. */
function reference(M: number, w: Float32Array): { h: Float32Array; y: Float32Array } {
  const h = new Float32Array(M * DIM);
  rmsnorm(h, unpadded(x, M, DIM, LD), g, M, DIM, EPS);
  const y = new Float32Array(M * N);
  matmul(y, h, w, M, DIM, N);
  return { h: padded(h, M, DIM, LD), y };
}

describe("matvec-splitk-norm against the cpu reference", () => {
  for (const dtype of ["f32", "f16"] as const) {
    it(`${dtype} weights in two row chunks: y and the normed rows for 1 to 4 rows`, async () => {
      expect(rig.ctx.hasSubgroups, "the fused kernel needs subgroups").toBe(true);
      const matrix = quantizeMatrix(random(N * DIM, 3), N, DIM, dtype);
      const decoded = dequantize(matrix);
      // A binding limit of 40 rows' bytes cuts the 70 rows into chunks of at most 40.
      const rowBytes = dtype === "f32" ? 4 * LD : 2 * LD;
      const dm = uploadMatrix(rig.ctx.device, "w", [matrix], { maxBinding: 40 * rowBytes + 32 });
      expect(dm.chunks.length).toBe(2);
      for (let M = 1; M <= 4; M++) {
        const [xb, gb] = [rig.buffer(x), rig.buffer(g)];
        const h = rig.buffer(random(4 * LD, 4, 100)); // garbage: the kernel writes every normed row
        const y = rig.buffer(4 * N * 4);
        await rig.run(
          dm.chunks.map((c) => ({
            kernel: "matvec-splitk-norm" as const,
            variant: { weights: c.format },
            buffers: [xb, c.buffer, y, gb, h],
          })),
          (enc, normed) =>
            op.linearNormed(
              enc,
              { matrix: dm, matmul: [], tiled: false, matvec: null, normed },
              { M, ldx: LD, ldy: N, normDim: DIM, eps: EPS, maxSubgroup: rig.ctx.maxSubgroup },
            ),
        );
        const ref = reference(M, decoded);
        expect(relDiff(await rig.readF32(y, M * N), ref.y), `y, ${M} rows`).toBeLessThanOrEqual(FUSED_TOL);
        expect(relDiff(await rig.readF32(h, M * LD), ref.h), `h, ${M} rows`).toBeLessThanOrEqual(FUSED_TOL);
      }
      for (const c of dm.chunks) c.buffer.destroy();
    });
  }

  it("refuses more than 4 rows, and a matrix without fused sites", () => {
    const sites = { matrix: null!, matmul: [], tiled: false, matvec: null, normed: [] };
    const a = { M: 5, ldx: 4, ldy: 4, normDim: 4, eps: EPS, maxSubgroup: 8 };
    expect(() => op.linearNormed(null!, sites, a)).toThrow(/at most 4 rows, got 5/);
    expect(() => op.linearNormed(null!, { ...sites, normed: null }, { ...a, M: 1 })).toThrow(/no fused norm/);
  });
});

describe("the backend with fused norms", () => {
  it("matches the cpu backend on decode rows with and without adapters, and on a prefill", async () => {
    const model = await stories();
    const options = { numBlocks: 16, blockSize: 16, adapterSlots: 2, maxRank: 16 };
    const gpu = await createWebGpuBackend(model.weights, { ...options, matvec: "splitk", norm: "fused" });
    const cpu = createCpuBackend(model.weights, options);
    try {
      expect([gpu.matvec, gpu.kernels.norm]).toEqual(["splitk", "fused"]);
      for (const [slot, name] of (["dragon", "robot"] as const).entries()) {
        const adapter = await demoAdapter(name, options.maxRank);
        await gpu.setAdapter(slot, adapter);
        await cpu.setAdapter(slot, adapter);
      }
      const prompt = [1, 403, 261, 378, 92, 77];
      let steps: SequenceStep[] = [
        { tokens: prompt, position: 0, blockTable: [0], slot: 0 },
        { tokens: prompt.slice(0, 4), position: 0, blockTable: [1], slot: -1 },
        { tokens: prompt.slice(0, 2), position: 0, blockTable: [2], slot: 1 },
      ];
      expect(relDiff(await gpu.forward(steps), await cpu.forward(steps)), "prefill").toBeLessThanOrEqual(LOGIT_TOL);
      for (let i = 0; i < 3; i++) {
        steps = steps.map((s) => ({ ...s, tokens: [200 + i], position: s.position + s.tokens.length }));
        const rows = i === 2 ? steps.slice(0, 1) : steps; // 3 rows, then 1
        expect(relDiff(await gpu.forward(rows), await cpu.forward(rows)), `decode ${i}`).toBeLessThanOrEqual(LOGIT_TOL);
      }
      const decode = steps.map((s) => ({ ...s, tokens: [7], position: s.position + 1 }));
      const kernels = await kernelsOfStep(gpu, decode);
      expect(kernels).toContain("matvec-splitk-norm");
      // Fused norms in every layer (a dispatch per part of q|k|v and gate|up); rmsnorm.wgsl runs the final norm only.
      expect(kernels.filter((k) => k === "matvec-splitk-norm").length).toBeGreaterThanOrEqual(
        2 * model.weights.config.nLayers,
      );
      expect(kernels.filter((k) => k === "rmsnorm").length).toBe(1);
    } finally {
      await gpu.close();
    }
  });
});
