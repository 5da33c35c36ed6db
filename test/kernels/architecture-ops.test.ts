// The kernels of the architectures beyond plain LLaMA against the reference ops, on sizes that are not multiples
// of 4 or of the workgroup size: embed.wgsl's scale (Gemma) exact up to f32 rounding; rmsnorm.wgsl accumulating
// (Gemma 2 post-norms) and head-rmsnorm.wgsl (Qwen3 q/k norms) 1e-5; bias-add.wgsl (Qwen2) exact; gated.wgsl
// (GeGLU) and softcap.wgsl (Gemma) 1e-5 (a tanh built from exp against Math.tanh). Tolerances are max |gpu - cpu|
// relative to max |cpu|.
import { afterAll, describe, expect, it } from "vitest";
import { addBias, geglu, rmsnorm, softcap } from "../../node/engine/backend/cpu/ops.ts";
import { pad4 } from "../../node/engine/backend/webgpu/kernels.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { uploadMatrix } from "../../node/engine/backend/webgpu/tensors.ts";
import { float32Matrix } from "../../node/engine/formats/weight-codec.ts";
import { expectClose, harness, padded, random, unpadded } from "./harness.ts";

const h = await harness();
afterAll(() => h.close());

describe("embed.wgsl with a scale", () => {
  it("multiplies the gathered rows by sqrt(dim) as float32", async () => {
    const [vocab, dim] = [11, 10];
    const ld = pad4(dim);
    const table = random(vocab * dim, 1);
    const scale = Math.fround(Math.sqrt(dim));
    const matrix = uploadMatrix(h.device, "embedding", [float32Matrix(vocab, dim, table)], { maxBinding: 1 << 20 });
    const tokens = Uint32Array.from([3, 0, 10, 3]);
    const out = h.buffer(tokens.length * ld * 4);
    await h.run([{ kernel: "embed", buffers: [matrix.chunks[0].buffer, h.buffer(tokens), out] }], (enc, [site]) =>
      op.embed(enc, site, { T: tokens.length, K4: matrix.K4, rowStart: 0, rowCount: vocab, scale }),
    );
    const expected = new Float32Array(tokens.length * dim);
    tokens.forEach((t, r) =>
      expected.set(
        table.subarray(t * dim, (t + 1) * dim).map((v) => v * scale),
        r * dim,
      ),
    );
    expect([...unpadded(await h.readF32(out, tokens.length * ld), tokens.length, dim, ld)]).toEqual([...expected]);
  });
});

describe("rmsnorm.wgsl accumulating", () => {
  it("adds the normed rows to what out holds (x += norm(y)), padding untouched", async () => {
    const [rows, dim] = [3, 70];
    const ld = pad4(dim);
    const y = random(rows * dim, 2, 4);
    const w = random(dim, 3);
    const x = random(rows * dim, 4);
    const out = h.buffer(padded(x, rows, dim, ld));
    await h.run(
      [{ kernel: "rmsnorm", buffers: [h.buffer(padded(y, rows, dim, ld)), h.buffer(w), h.buffer(4), out] }],
      (enc, [site]) =>
        op.rmsnorm(enc, site, { R: rows, dim, ldx: ld, ldo: ld, eps: 1e-6, gather: false, accumulate: true }),
    );
    const normed = new Float32Array(rows * dim);
    rmsnorm(normed, y, w, rows, dim, 1e-6);
    const got = await h.readF32(out, rows * ld);
    expectClose(
      unpadded(got, rows, dim, ld),
      x.map((v, i) => v + normed[i]),
      1e-5,
    );
    for (let r = 0; r < rows; r++) for (let c = dim; c < ld; c++) expect(got[r * ld + c]).toBe(0);
  });
});

describe("head-rmsnorm.wgsl", () => {
  for (const [T, heads, headDim] of [
    [1, 1, 2],
    [3, 4, 10],
    [2, 3, 130],
  ]) {
    it(`${T} rows, ${heads} heads of ${headDim}, in place at a column offset`, async () => {
      const off = 6;
      const ld = off + heads * headDim + 5;
      const x = random(T * ld, headDim, 3);
      const w = random(headDim, headDim + 1);
      const xb = h.buffer(x);
      await h.run([{ kernel: "head-rmsnorm", buffers: [xb, h.buffer(w)] }], (enc, [site]) =>
        op.headRmsnorm(enc, site, { T, ld, off, heads, headDim, eps: 1e-6 }),
      );
      const got = await h.readF32(xb, T * ld);
      const part = unpadded(x, T, heads * headDim, ld, off);
      rmsnorm(part, part, w, T * heads, headDim, 1e-6);
      expectClose(unpadded(got, T, heads * headDim, ld, off), part, 1e-5, "heads");
      expect([...unpadded(got, T, off, ld)]).toEqual([...unpadded(x, T, off, ld)]);
      expect([...unpadded(got, T, 5, ld, off + heads * headDim)]).toEqual([
        ...unpadded(x, T, 5, ld, off + heads * headDim),
      ]);
    });
  }
});

describe("bias-add.wgsl", () => {
  it("adds the bias to the first N columns of every row", async () => {
    const [T, N, ld] = [5, 67, 70];
    const y = random(T * ld, 6);
    const bias = random(N, 7);
    const yb = h.buffer(y);
    await h.run([{ kernel: "bias-add", buffers: [yb, h.buffer(bias)] }], (enc, [site]) =>
      op.biasAdd(enc, site, { T, N, ld }),
    );
    const expected = unpadded(y, T, N, ld);
    addBias(expected, bias);
    const got = await h.readF32(yb, T * ld);
    expect([...unpadded(got, T, N, ld)]).toEqual([...expected]);
    expect([...unpadded(got, T, ld - N, ld, N)]).toEqual([...unpadded(y, T, ld - N, ld, N)]);
  });
});

describe("gated.wgsl, GeGLU", () => {
  for (const [T, hidden] of [
    [1, 1],
    [3, 67],
    [2, 300],
  ]) {
    it(`${T} rows of ${hidden}, gates from -8 to 8`, async () => {
      const gu = random(T * 2 * hidden, hidden, 8);
      const ldOut = pad4(hidden);
      const out = h.buffer(T * ldOut * 4);
      await h.run(
        [{ kernel: "gated", variant: { constants: { GELU: 1 } }, buffers: [h.buffer(gu), out] }],
        (enc, [site]) => op.swiglu(enc, site, { T, hidden, ldIn: 2 * hidden, upOff: hidden, ldOut }),
      );
      const expected = new Float32Array(T * hidden);
      geglu(expected, unpadded(gu, T, hidden, 2 * hidden), unpadded(gu, T, hidden, 2 * hidden, hidden));
      expectClose(unpadded(await h.readF32(out, T * ldOut), T, hidden, ldOut), expected, 1e-5);
    });
  }
});

describe("softcap.wgsl", () => {
  it("caps the first N columns of each row at cap x tanh(y / cap), large values included", async () => {
    const [R, N, ld, cap] = [3, 101, 104, 30];
    const y = random(R * ld, 9, 200);
    const yb = h.buffer(y);
    await h.run([{ kernel: "softcap", buffers: [yb] }], (enc, [site]) => op.softcap(enc, site, { R, N, ld, cap }));
    const expected = unpadded(y, R, N, ld);
    softcap(expected, cap);
    const got = await h.readF32(yb, R * ld);
    expectClose(unpadded(got, R, N, ld), expected, 1e-5);
    expect(Math.max(...unpadded(got, R, N, ld).map(Math.abs))).toBeLessThanOrEqual(cap);
    expect([...unpadded(got, R, ld - N, ld, N)]).toEqual([...unpadded(y, R, ld - N, ld, N)]);
  });
});
