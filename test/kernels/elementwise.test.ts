// embed.wgsl, rmsnorm.wgsl, rope.wgsl and gated.wgsl (SwiGLU) against the reference ops, on sizes that are not
// multiples of 4 or of the workgroup size. Tolerances (max |gpu - cpu| relative to max |cpu|): embed exact (f32) and
// 1e-3 (f16 table); rmsnorm 1e-5; rope 1e-6 (host cos/sin table: the only error is f32 rounding); swiglu 1e-6.
import { afterAll, describe, expect, it } from "vitest";
import { rmsnorm as refRmsnorm, rope as refRope, swiglu as refSwiglu } from "../../node/engine/backend/cpu/ops.ts";
import { pad4 } from "../../node/engine/backend/webgpu/kernels.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { uploadMatrix } from "../../node/engine/backend/webgpu/tensors.ts";
import { float32Matrix } from "../../node/engine/formats/weight-codec.ts";
import { expectClose, harness, padded, random, unpadded } from "./harness.ts";

const h = await harness();
afterAll(() => h.close());

describe("embed.wgsl", () => {
  for (const f16 of [false, true]) {
    it(`gathers rows from a table split into chunks${f16 ? " (f16)" : ""}`, async () => {
      const vocab = 37;
      const dim = 13;
      const ld = pad4(dim);
      const table = random(vocab * dim, 7);
      const matrix = uploadMatrix(h.device, "embedding", [float32Matrix(vocab, dim, table)], {
        maxBinding: 5 * ld * (f16 ? 2 : 4) + 32,
        f16,
      });
      expect(matrix.chunks.length).toBe(8);
      const tokens = Uint32Array.from([0, 36, 5, 5, 12, 35, 20, 1, 4]);
      const tb = h.buffer(tokens);
      const out = h.buffer(tokens.length * ld * 4);
      await h.run(
        matrix.chunks.map((c) => ({ kernel: "embed", variant: { weights: c.format }, buffers: [c.buffer, tb, out] })),
        (enc, sites) => {
          matrix.chunks.forEach((c, i) =>
            op.embed(enc, sites[i], { T: tokens.length, K4: matrix.K4, rowStart: c.rowStart, rowCount: c.rows }),
          );
        },
      );
      const got = await h.readF32(out, tokens.length * ld);
      const expected = new Float32Array(tokens.length * dim);
      tokens.forEach((tok, r) => expected.set(table.subarray(tok * dim, (tok + 1) * dim), r * dim));
      expectClose(unpadded(got, tokens.length, dim, ld), expected, f16 ? 1e-3 : 0);
      for (let r = 0; r < tokens.length; r++) for (let c = dim; c < ld; c++) expect(got[r * ld + c]).toBe(0);
    });
  }
});

describe("rmsnorm.wgsl", () => {
  for (const [rows, dim] of [
    [1, 1],
    [3, 7],
    [5, 64],
    [2, 100],
    [4, 333],
  ]) {
    it(`${rows} rows of ${dim}`, async () => {
      const ld = pad4(dim);
      const x = random(rows * dim, dim, 3);
      const w = random(dim, dim + 1);
      const out = h.buffer(rows * ld * 4);
      const xb = h.buffer(padded(x, rows, dim, ld));
      await h.run([{ kernel: "rmsnorm", buffers: [xb, h.buffer(w), h.buffer(4), out] }], (enc, [site]) =>
        op.rmsnorm(enc, site, { R: rows, dim, ldx: ld, ldo: ld, eps: 1e-5, gather: false }),
      );
      const expected = new Float32Array(rows * dim);
      refRmsnorm(expected, x, w, rows, dim, 1e-5);
      expectClose(unpadded(await h.readF32(out, rows * ld), rows, dim, ld), expected, 1e-5);
    });
  }
  it("gathers rows (the final norm of each sequence's last row)", async () => {
    const rows = 9;
    const dim = 10;
    const x = random(rows * dim, 3);
    const w = random(dim, 4);
    const pick = [8, 0, 3];
    const out = h.buffer(pick.length * 12 * 4);
    await h.run(
      [{ kernel: "rmsnorm", buffers: [h.buffer(x), h.buffer(w), h.buffer(Uint32Array.from(pick)), out] }],
      (enc, [site]) => op.rmsnorm(enc, site, { R: pick.length, dim, ldx: dim, ldo: 12, eps: 1e-5, gather: true }),
    );
    const src = new Float32Array(pick.length * dim);
    pick.forEach((r, i) => src.set(x.subarray(r * dim, (r + 1) * dim), i * dim));
    const expected = new Float32Array(pick.length * dim);
    refRmsnorm(expected, src, w, pick.length, dim, 1e-5);
    expectClose(unpadded(await h.readF32(out, pick.length * 12), pick.length, dim, 12), expected, 1e-5);
  });
});

describe("rope.wgsl", () => {
  for (const [nHeads, nKvHeads, headDim, theta] of [
    [8, 4, 8, 10000],
    [3, 1, 6, 10000],
    [2, 2, 130, 500000],
  ]) {
    it(`q ${nHeads} heads, k ${nKvHeads} heads of ${headDim}`, async () => {
      const positions = [0, 1, 7, 100, 511, 3];
      const T = positions.length;
      const qW = nHeads * headDim;
      const kW = nKvHeads * headDim;
      const ld = qW + 2 * kW + 1;
      const data = random(T * ld, headDim);
      const table = new Float32Array(512 * headDim);
      for (let p = 0; p < 512; p++) {
        for (let i = 0; i < headDim; i += 2) {
          const angle = p * Math.pow(theta, -i / headDim);
          table[p * headDim + i] = Math.cos(angle);
          table[p * headDim + i + 1] = Math.sin(angle);
        }
      }
      const xb = h.buffer(data);
      await h.run(
        [{ kernel: "rope", buffers: [xb, h.buffer(Uint32Array.from(positions)), h.buffer(table)] }],
        (enc, [site]) => op.rope(enc, site, { T, ld, heads: nHeads + nKvHeads, headDim }),
      );
      const got = await h.readF32(xb, T * ld);
      const q = unpadded(data, T, qW, ld);
      const k = unpadded(data, T, kW, ld, qW);
      refRope(q, positions, nHeads, headDim, theta);
      refRope(k, positions, nKvHeads, headDim, theta);
      expectClose(unpadded(got, T, qW, ld), q, 1e-6, "q");
      expectClose(unpadded(got, T, kW, ld, qW), k, 1e-6, "k");
      expectClose(unpadded(got, T, kW + 1, ld, qW + kW), unpadded(data, T, kW + 1, ld, qW + kW), 0, "v untouched");
    });
  }
});

describe("gated.wgsl, SwiGLU", () => {
  for (const [T, hidden] of [
    [1, 1],
    [3, 67],
    [2, 172],
  ]) {
    it(`${T} rows of ${hidden}`, async () => {
      const gu = random(T * 2 * hidden, hidden, 6);
      const ldOut = pad4(hidden);
      const out = h.buffer(T * ldOut * 4);
      await h.run([{ kernel: "gated", buffers: [h.buffer(gu), out] }], (enc, [site]) =>
        op.swiglu(enc, site, { T, hidden, ldIn: 2 * hidden, upOff: hidden, ldOut }),
      );
      const expected = new Float32Array(T * hidden);
      refSwiglu(expected, unpadded(gu, T, hidden, 2 * hidden), unpadded(gu, T, hidden, 2 * hidden, hidden));
      const got = await h.readF32(out, T * ldOut);
      expectClose(unpadded(got, T, hidden, ldOut), expected, 1e-6);
      for (let r = 0; r < T; r++) for (let c = hidden; c < ldOut; c++) expect(got[r * ldOut + c]).toBe(0);
    });
  }
});
