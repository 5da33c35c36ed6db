// matmul.wgsl (many rows), matvec.wgsl and matvec-splitk.wgsl (decode, M <= 4) against ops.matmul, on awkward
// shapes, row-split (chunked) weights, accumulate mode (the fused residual add) and every weight format.
// Tolerance: max |gpu - cpu| <= 1e-5 x max |cpu| for f32 weights; 3e-3 for f32 weights stored as f16 (11 bits);
// 1e-5 for weights of a stored format (f16, bf16, Q8_0, Q4_0, Q4_K, Q6_K) against the reference on the same
// values dequantized (the kernel decodes the same numbers; only the order of the sums differs). matmul-tiled.wgsl
// with f16 stages (halfAccumulate: inputs and 32-term sums in f16, the sums of stages in f32): 2e-3.
import { afterAll, describe, expect, it } from "vitest";
import { matmul as refMatmul } from "../../node/engine/backend/cpu/ops.ts";
import { pad4 } from "../../node/engine/backend/webgpu/kernels.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { uploadMatrix } from "../../node/engine/backend/webgpu/tensors.ts";
import { dequantize, float32Matrix, quantizeMatrix } from "../../node/engine/formats/weight-codec.ts";
import type { WeightDType } from "../../node/engine/model/weights.ts";
import { difference, expectClose, harness, padded, random, unpadded } from "./harness.ts";

const h = await harness();
afterAll(() => h.close());

async function gpuLinear(
  kind: "matmul" | "matmul-tiled" | "matvec" | "matvec-splitk",
  M: number,
  N: number,
  K: number,
  o: {
    f16?: boolean;
    dtype?: WeightDType;
    rowsPerChunk?: number;
    accumulate?: boolean;
    seed?: number;
    halfAccumulate?: boolean;
  } = {},
) {
  const seed = o.seed ?? M * 1000 + N * 10 + K;
  const x = random(M * K, seed);
  const stored = quantizeMatrix(random(N * K, seed + 1), N, K, o.dtype ?? "f32");
  const w = dequantize(stored);
  const y0 = random(M * N, seed + 2);
  const ld = pad4(K);
  const rowBytes = o.dtype && o.dtype !== "f32" ? stored.data.length / N : ld * (o.f16 ? 2 : 4);
  const maxBinding = o.rowsPerChunk ? o.rowsPerChunk * rowBytes + 32 : 1 << 27;
  const matrix = uploadMatrix(h.device, "w", [o.dtype ? stored : float32Matrix(N, K, w)], { maxBinding, f16: o.f16 });
  const ldy = N + 3; // a wider output row, written at an offset, as the classifier chunks are
  const yOff = 2;
  const yInit = new Float32Array(M * ldy);
  for (let m = 0; m < M; m++) yInit.set(y0.subarray(m * N, (m + 1) * N), m * ldy + yOff);
  const xb = h.buffer(padded(x, M, K, ld));
  const yb = h.buffer(yInit);
  await h.run(
    matrix.chunks.map((c) => ({
      kernel: kind,
      variant: { weights: c.format, halfAccumulate: o.halfAccumulate },
      buffers: [xb, c.buffer, yb],
    })),
    (enc, sites) => {
      matrix.chunks.forEach((c, i) => {
        const args = {
          M,
          N: c.rows,
          K4: matrix.K4,
          ldx4: ld / 4,
          ldy,
          yOff: yOff + c.rowStart,
          accumulate: Boolean(o.accumulate),
          sOff: c.sOff,
        };
        if (kind === "matvec") op.matvec(enc, sites[i], args);
        else if (kind === "matvec-splitk") op.matvecSplitK(enc, sites[i], args, h.ctx.maxSubgroup);
        else if (kind === "matmul-tiled") op.matmulTiled(enc, sites[i], args);
        else op.matmul(enc, sites[i], args);
      });
    },
  );
  const y = await h.readF32(yb, M * ldy);
  const expected = new Float32Array(M * N);
  refMatmul(expected, x, w, M, K, N);
  if (o.accumulate) for (let i = 0; i < expected.length; i++) expected[i] += y0[i];
  // Columns outside [yOff, yOff + N) must be untouched.
  for (let m = 0; m < M; m++) {
    expect(y[m * ldy]).toBe(0);
    expect(y[m * ldy + 1]).toBe(0);
    expect(y[m * ldy + yOff + N]).toBe(0);
  }
  return { actual: unpadded(y, M, N, ldy, yOff), expected, chunks: matrix.chunks.length };
}

// lavapipe compiles a kernel with workgroup barriers slowly (tens of seconds on a loaded machine): a long timeout.
describe("matmul-tiled.wgsl", { timeout: 180_000 }, () => {
  // Tiles of 64: shapes below, at and across a tile in M and N, K below, at and across a stage of 32 columns.
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [3, 7, 5],
    [64, 64, 32],
    [65, 130, 33],
    [130, 63, 173],
    [17, 200, 256],
  ];
  for (const [M, N, K] of shapes) {
    it(`M ${M}, N ${N}, K ${K}`, async () => {
      const r = await gpuLinear("matmul-tiled", M, N, K);
      expectClose(r.actual, r.expected, 1e-5);
    });
  }
  it("weight split into row chunks, accumulate", async () => {
    const r = await gpuLinear("matmul-tiled", 70, 50, 37, { rowsPerChunk: 7, accumulate: true });
    expect(r.chunks).toBe(8);
    expectClose(r.actual, r.expected, 1e-5);
  });
  it("f16 stages (shader-f16): within 2e-3, and really in half precision", async () => {
    expect(h.ctx.hasF16, "f16 stages need shader-f16").toBe(true);
    for (const dtype of ["f32", "f16"] as const) {
      const r = await gpuLinear("matmul-tiled", 70, 70, 300, { dtype, halfAccumulate: true, accumulate: true });
      expectClose(r.actual, r.expected, 2e-3, dtype);
      expect(difference(r.actual, r.expected).rel, dtype).toBeGreaterThan(1e-5);
    }
  });
});

describe("matmul.wgsl", () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [1, 5, 3],
    [3, 7, 5],
    [4, 64, 64],
    [5, 63, 173],
    [17, 130, 66],
    [33, 9, 256],
    [64, 172, 64],
  ];
  for (const [M, N, K] of shapes) {
    it(`M ${M}, N ${N}, K ${K}`, async () => {
      const r = await gpuLinear("matmul", M, N, K);
      expectClose(r.actual, r.expected, 1e-5);
    });
  }
  it("weight split into row chunks (classifier-style), accumulate", async () => {
    const r = await gpuLinear("matmul", 6, 50, 37, { rowsPerChunk: 7, accumulate: true });
    expect(r.chunks).toBe(8);
    expectClose(r.actual, r.expected, 1e-5);
  });
  it("f32 weights stored as f16", async () => {
    const r = await gpuLinear("matmul", 9, 70, 130, { f16: true, rowsPerChunk: 16 });
    expectClose(r.actual, r.expected, 3e-3);
  });
});

/** Every stored format through all three kernels: a width of whole super-blocks, row chunks, accumulate. */
describe("weight formats decoded inside the kernels", () => {
  for (const dtype of ["f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k"] as const) {
    // The tiled kernel reads wload as the others do; two decoders through it keep lavapipe's compile time down.
    const tiled = dtype === "q8_0" || dtype === "q4_k" ? (["matmul-tiled"] as const) : [];
    for (const kind of ["matmul", ...tiled, "matvec", "matvec-splitk"] as const) {
      it(`${dtype} in ${kind}: M 3, N 37 in chunks of 8 rows, K 512`, { timeout: 180_000 }, async (t) => {
        if (kind === "matvec-splitk" && !h.ctx.hasSubgroups) t.skip();
        const r = await gpuLinear(kind, 3, 37, 512, { dtype, rowsPerChunk: 8, accumulate: true });
        expect(r.chunks).toBe(5);
        expectClose(r.actual, r.expected, 1e-5);
      });
    }
  }
});

for (const kind of ["matvec", "matvec-splitk"] as const) {
  describe(`${kind}.wgsl`, () => {
    const needs = kind === "matvec-splitk";
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [1, 7, 5],
      [2, 64, 64],
      [3, 131, 173],
      [4, 33, 258],
      [1, 512, 64],
    ];
    for (const [M, N, K] of shapes) {
      it(`M ${M}, N ${N}, K ${K}`, async (t) => {
        if (needs && !h.ctx.hasSubgroups) t.skip();
        const r = await gpuLinear(kind, M, N, K);
        expectClose(r.actual, r.expected, 1e-5);
      });
    }
    it("row chunks, accumulate, f32 stored as f16", async (t) => {
      if (needs && !h.ctx.hasSubgroups) t.skip();
      const a = await gpuLinear(kind, 4, 45, 19, { rowsPerChunk: 10, accumulate: true });
      expectClose(a.actual, a.expected, 1e-5);
      const b = await gpuLinear(kind, 2, 45, 19, { rowsPerChunk: 10, f16: true });
      expectClose(b.actual, b.expected, 3e-3);
    });
  });
}

describe("matvec host side", () => {
  it("rejects more than 4 rows", () => {
    const a = { M: 5, N: 1, K4: 1, ldx4: 1, ldy: 1, yOff: 0, accumulate: false };
    expect(() => op.matvec(null as never, null as never, a)).toThrow(RangeError);
    expect(() => op.matvecSplitK(null as never, null as never, a, 8)).toThrow(RangeError);
  });
});
