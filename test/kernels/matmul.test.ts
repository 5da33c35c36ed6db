// matmul.wgsl (many rows), matvec.wgsl and matvec-splitk.wgsl (decode, M <= 4) against ops.matmul, on awkward shapes, row-split
// (chunked) weights, accumulate mode (the fused residual add) and f16 weights.
// Tolerance: max |gpu - cpu| <= 1e-5 x max |cpu| for f32 weights; 3e-3 for f16 weights (f16 has 11 bits).
import { afterAll, describe, expect, it } from "vitest";
import { matmul as refMatmul } from "../../node/engine/backend/cpu/ops.ts";
import { pad4 } from "../../node/engine/backend/webgpu/kernels.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { uploadMatrix } from "../../node/engine/backend/webgpu/tensors.ts";
import { expectClose, harness, padded, random, unpadded } from "./harness.ts";

const h = await harness();
afterAll(() => h.close());

async function gpuLinear(
  kind: "matmul" | "matvec" | "matvec-splitk",
  M: number,
  N: number,
  K: number,
  o: { f16?: boolean; rowsPerChunk?: number; accumulate?: boolean; seed?: number } = {},
) {
  const seed = o.seed ?? M * 1000 + N * 10 + K;
  const x = random(M * K, seed);
  const w = random(N * K, seed + 1);
  const y0 = random(M * N, seed + 2);
  const ld = pad4(K);
  const rowBytes = ld * (o.f16 ? 2 : 4);
  const maxBinding = o.rowsPerChunk ? o.rowsPerChunk * rowBytes + 16 : 1 << 27;
  const matrix = uploadMatrix(h.device, "w", [w], K, Boolean(o.f16), maxBinding);
  const ldy = N + 3; // a wider output row, written at an offset, as the classifier chunks are
  const yOff = 2;
  const yInit = new Float32Array(M * ldy);
  for (let m = 0; m < M; m++) yInit.set(y0.subarray(m * N, (m + 1) * N), m * ldy + yOff);
  const xb = h.buffer(padded(x, M, K, ld));
  const yb = h.buffer(yInit);
  await h.run(
    matrix.chunks.map((c) => ({ kernel: kind, variant: { f16: o.f16 }, buffers: [xb, c.buffer, yb] })),
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
        };
        if (kind === "matvec") op.matvec(enc, sites[i], args);
        else if (kind === "matvec-splitk") op.matvecSplitK(enc, sites[i], args, h.ctx.maxSubgroup);
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
  it("f16 weights", async (t) => {
    if (!h.ctx.hasF16) t.skip();
    const r = await gpuLinear("matmul", 9, 70, 130, { f16: true, rowsPerChunk: 16 });
    expectClose(r.actual, r.expected, 3e-3);
  });
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
    it("row chunks, accumulate, f16", async (t) => {
      if ((needs && !h.ctx.hasSubgroups) || !h.ctx.hasF16) t.skip();
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
