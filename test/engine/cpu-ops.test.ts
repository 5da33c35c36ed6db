// The cpu backend's operators held to their textbook definitions (written out here in float64, loop by loop),
// where the end-to-end references (llama2.c's outputs) cannot see a difference: the softmax shift in attention
// with scores that would overflow exp, the eps of RMSNorm on a zero row, paging through a scrambled block
// table, grouped-query heads, continuation rows. Then what the backend object itself promises: its size, its
// slot checks, and that sample() applies each row's own sampling parameters to that row's logits.
import { describe, expect, it } from "vitest";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import {
  addInto,
  kvRow,
  matmul,
  pagedAttention,
  rmsnorm,
  rope,
  swiglu,
  type PagedKv,
} from "../../node/engine/backend/cpu/ops.ts";
import { randomModel } from "../../node/engine/formats/random-model.ts";
import type { ModelConfig } from "../../node/engine/model/config.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";
import { sampleToken } from "../../node/engine/sampling/sample.ts";
import { demoAdapter, stories } from "../helpers/stories.ts";

const rng = createRng(99);
const randoms = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (2 * rng() - 1) * scale);

function expectClose(actual: Float32Array, expected: number[], tolerance = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Math.abs(actual[i] - expected[i]) > tolerance * Math.max(1, Math.abs(expected[i]))) {
      expect(actual[i], `element ${i}`).toBe(expected[i]);
    }
  }
}

describe("cpu operators against their definitions", () => {
  it("rmsnorm: x / sqrt(mean(x^2) + eps) * w per row; a zero row stays zero (eps, not NaN)", () => {
    const [rows, dim, eps] = [3, 5, 1e-5];
    const x = randoms(rows * dim, 3);
    x.fill(0, dim, 2 * dim);
    const w = randoms(dim);
    const out = new Float32Array(rows * dim);
    rmsnorm(out, x, w, rows, dim, eps);
    const expected: number[] = [];
    for (let r = 0; r < rows; r++) {
      const row = [...x.subarray(r * dim, (r + 1) * dim)];
      const rms = Math.sqrt(row.reduce((s, v) => s + v * v, 0) / dim + eps);
      row.forEach((v, i) => expected.push((w[i] * v) / rms));
    }
    expectClose(out, expected);
    expect(out.subarray(dim, 2 * dim).every((v) => v === 0)).toBe(true);
    // eps counts: with eps 1 a row of ones is scaled by 1 / sqrt(2).
    const ones = new Float32Array(4).fill(1);
    rmsnorm(out, ones, ones, 1, 4, 1);
    expectClose(
      out.subarray(0, 4),
      [1, 1, 1, 1].map(() => 1 / Math.SQRT2),
    );
  });

  it("matmul: out[r, j] = sum_i x[r, i] w[j, i]; addInto adds element-wise", () => {
    const [rows, inDim, outDim] = [3, 7, 4];
    const x = randoms(rows * inDim);
    const w = randoms(outDim * inDim);
    const out = new Float32Array(rows * outDim);
    matmul(out, x, w, rows, inDim, outDim);
    const expected: number[] = [];
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < outDim; j++) {
        let sum = 0;
        for (let i = 0; i < inDim; i++) sum += x[r * inDim + i] * w[j * inDim + i];
        expected.push(sum);
      }
    }
    expectClose(out, expected);
    const y = Float32Array.of(1, 2, 3);
    addInto(y, Float32Array.of(10, 20, 30));
    expect([...y]).toEqual([11, 22, 33]);
  });

  it("rope: each pair (2i, 2i+1) of every head turns by position * theta^(-2i / headDim)", () => {
    const [nHeads, headDim, theta] = [2, 6, 500];
    const positions = [0, 3, 17];
    const x = randoms(positions.length * nHeads * headDim);
    const original = [...x];
    rope(x, positions, nHeads, headDim, theta);
    const expected = [...original];
    positions.forEach((p, r) => {
      for (let h = 0; h < nHeads; h++) {
        for (let pair = 0; pair < headDim / 2; pair++) {
          const angle = p / theta ** ((2 * pair) / headDim);
          const at = r * nHeads * headDim + h * headDim + 2 * pair;
          const [a, b] = [original[at], original[at + 1]];
          expected[at] = a * Math.cos(angle) - b * Math.sin(angle);
          expected[at + 1] = a * Math.sin(angle) + b * Math.cos(angle);
        }
      }
    });
    expectClose(x, expected);
    expect([...x.subarray(0, nHeads * headDim)]).toEqual(original.slice(0, nHeads * headDim).map(Math.fround)); // position 0: unchanged
  });

  it("swiglu: silu(gate) * up", () => {
    const gate = Float32Array.of(-3, -0.5, 0, 0.5, 4);
    const up = Float32Array.of(2, -1, 5, 3, 0.25);
    const out = new Float32Array(5);
    swiglu(out, gate, up);
    expectClose(
      out,
      [...gate].map((g, i) => (g / (1 + Math.exp(-g))) * up[i]),
    );
  });

  it("kvRow: position p lives in block table[p / blockSize], row p % blockSize, after the layer's offset", () => {
    const kv: PagedKv = { k: new Float32Array(0), v: new Float32Array(0), layerOffset: 1000, blockSize: 4, kvDim: 3 };
    expect(kvRow(kv, [7, 2, 5], 0)).toBe(1000 + (7 * 4 + 0) * 3);
    expect(kvRow(kv, [7, 2, 5], 5)).toBe(1000 + (2 * 4 + 1) * 3);
    expect(kvRow(kv, [7, 2, 5], 11)).toBe(1000 + (5 * 4 + 3) * 3);
  });

  /** Causal grouped-query attention over plain (unpaged) K/V rows, in float64. */
  function naiveAttention(
    q: Float32Array,
    keys: number[][],
    values: number[][],
    position: number,
    rows: number,
    nHeads: number,
    nKvHeads: number,
    headDim: number,
  ): number[] {
    const out: number[] = [];
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < nHeads; h++) {
        const kvh = Math.floor(h / (nHeads / nKvHeads));
        const qv = [...q.subarray((r * nHeads + h) * headDim, (r * nHeads + h + 1) * headDim)];
        const scores = keys
          .slice(0, position + r + 1)
          .map((k) => qv.reduce((s, x, d) => s + x * k[kvh * headDim + d], 0) / Math.sqrt(headDim));
        const max = Math.max(...scores);
        const weights = scores.map((s) => Math.exp(s - max));
        const total = weights.reduce((a, b) => a + b, 0);
        for (let d = 0; d < headDim; d++)
          out.push(weights.reduce((s, w, t) => s + (w / total) * values[t][kvh * headDim + d], 0));
      }
    }
    return out;
  }

  for (const [name, qScale] of [
    ["ordinary scores", 1],
    ["scores that would overflow exp without the max shift", 60],
  ] as const) {
    it(`pagedAttention: causal, grouped-query, through a scrambled block table (${name})`, () => {
      const [nHeads, nKvHeads, headDim, blockSize] = [4, 2, 4, 3];
      const kvDim = nKvHeads * headDim;
      const [position, rows] = [5, 3]; // 5 positions cached before, 3 new rows: positions 5, 6, 7
      const blockTable = [4, 0, 2];
      const layerOffset = 2 * 6 * blockSize * kvDim; // layer 2 of a 6-block pool
      const kv: PagedKv = {
        k: new Float32Array(layerOffset + 6 * blockSize * kvDim),
        v: new Float32Array(layerOffset + 6 * blockSize * kvDim),
        layerOffset,
        blockSize,
        kvDim,
      };
      const keys = Array.from({ length: position + rows }, () => [...randoms(kvDim, qScale)]);
      const values = Array.from({ length: position + rows }, () => [...randoms(kvDim)]);
      keys.forEach((k, p) => kv.k.set(k, kvRow(kv, blockTable, p)));
      values.forEach((v, p) => kv.v.set(v, kvRow(kv, blockTable, p)));
      const q = randoms(rows * nHeads * headDim, qScale);
      const out = new Float32Array(rows * nHeads * headDim).fill(7); // stale contents must not leak in
      pagedAttention(out, q, kv, blockTable, position, rows, nHeads, nKvHeads, headDim);
      expect(out.every(Number.isFinite)).toBe(true);
      expectClose(out, naiveAttention(q, keys, values, position, rows, nHeads, nKvHeads, headDim), 1e-4);
    });
  }
});

describe("cpu backend object", () => {
  const options = { numBlocks: 6, blockSize: 8, adapterSlots: 2, maxRank: 8 };

  it("counts its memory: every weight once (a tied classifier once) and the K and V pools", async () => {
    const { weights } = await stories();
    const c = weights.config;
    const kvDim = c.nKvHeads * c.headDim;
    const perLayer = 2 * c.dim * c.dim + 2 * kvDim * c.dim + 3 * c.hiddenDim * c.dim + 2 * c.dim;
    const pool = c.nLayers * options.numBlocks * options.blockSize * kvDim;
    const tiedFloats = c.vocabSize * c.dim + c.dim + c.nLayers * perLayer;
    const backend = createCpuBackend(weights, options);
    expect(backend.memoryBytes).toBe(4 * (tiedFloats + 2 * pool));
    expect([backend.kind, backend.device]).toEqual(["cpu", "cpu (TypeScript reference)"]);
    const config: ModelConfig = { ...c, nLayers: 2 };
    const untied = randomModel(config, 3, { tiedClassifier: false }).weights;
    const untiedPerLayer = perLayer;
    expect(createCpuBackend(untied, options).memoryBytes).toBe(
      4 *
        (2 * c.vocabSize * c.dim + c.dim + 2 * untiedPerLayer + 2 * 2 * options.numBlocks * options.blockSize * kvDim),
    );
  });

  it("checks slots by number and adapters by fit; an emptied slot is the base model again", async () => {
    const model = await stories();
    const backend = createCpuBackend(model.weights, options);
    for (const slot of [-1, 2, 0.5])
      await expect(backend.setAdapter(slot, null)).rejects.toThrow(`adapter slot ${slot} outside 0..1`);
    const step = { tokens: [1, 403, 407], position: 0, blockTable: [0], slot: 1 };
    const base = await backend.forward([{ ...step, slot: -1 }]);
    await backend.setAdapter(1, await demoAdapter("dragon"));
    expect(await backend.forward([step])).not.toEqual(base);
    await backend.setAdapter(1, null);
    expect(await backend.forward([step])).toEqual(base);
    await backend.close();
  });

  it("sample() applies each row's own parameters and draw to that row's logits", async () => {
    const model = await stories();
    const backend = createCpuBackend(model.weights, options);
    const steps = [
      { tokens: [1, 403], position: 0, blockTable: [0], slot: -1 },
      { tokens: [1, 300, 301, 302], position: 0, blockTable: [1], slot: -1 },
      { tokens: [1], position: 0, blockTable: [2], slot: -1 },
    ];
    const params = [
      { temperature: 0, topK: 0, topP: 1 },
      { temperature: 1.5, topK: 0, topP: 1 },
      { temperature: 0.8, topK: 20, topP: 0.9 },
    ];
    const vocab = model.weights.config.vocabSize;
    for (const u of [0.05, 0.5, 0.95]) {
      const uniforms = Float32Array.of(u, 1 - u, u / 2);
      const ids = await backend.sample(steps, params, uniforms);
      const logits = await backend.forward(steps);
      expect([...ids]).toEqual(
        steps.map((_, i) => sampleToken(logits.subarray(i * vocab, (i + 1) * vocab), params[i], uniforms[i])),
      );
    }
  });
});
