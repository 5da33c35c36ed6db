// The cpu operators that only models beyond plain LLaMA use, held to their definitions written out here in float64
// (the family tests compare whole models with transformers, where one wrong operator among many can hide): q/k/v
// bias (Qwen2), soft-capping and GeGLU (Gemma 2), RoPE with the model's own frequencies (Llama 3 scaling), and
// attention with its own scale, a soft-cap on the scores and a sliding window.
import { describe, expect, it } from "vitest";
import {
  addBias,
  geglu,
  kvRow,
  pagedAttention,
  rope,
  softcap,
  type PagedKv,
} from "../../node/engine/backend/cpu/ops.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";

const rng = createRng(7);
const randoms = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => (2 * rng() - 1) * scale);

/** Largest |got - want| / max(1, |want|): float32 results against float64 definitions. */
function worstError(got: Float32Array, want: readonly number[]): number {
  expect(got.length).toBe(want.length);
  return Math.max(...want.map((w, i) => Math.abs(got[i] - w) / Math.max(1, Math.abs(w))));
}

describe("cpu operators of the other families, against their definitions", () => {
  it("addBias adds bias[c] to column c of every row", () => {
    const y = Float32Array.of(1, 2, 3, 4, 5, 6);
    addBias(y, Float32Array.of(10, 20, 30));
    expect([...y]).toEqual([11, 22, 33, 14, 25, 36]);
  });

  it("softcap: cap * tanh(y / cap), which bounds |y| by cap (float32 reaches it) and keeps small values", () => {
    const y = Float32Array.of(-100, -3, 0, 0.01, 3, 100);
    const original = [...y];
    softcap(y, 5);
    expect(
      worstError(
        y,
        original.map((v) => 5 * Math.tanh(v / 5)),
      ),
    ).toBeLessThan(1e-6);
    expect(Math.abs(y[0])).toBeLessThanOrEqual(5);
    expect(y[3]).toBeCloseTo(0.01, 5);
  });

  it("geglu: gelu_tanh(gate) * up, PyTorch's tanh approximation", () => {
    const gate = Float32Array.of(-4, -1, -0.25, 0, 0.5, 2, 6);
    const up = Float32Array.of(2, -1, 5, 3, 0.25, -2, 1);
    const out = new Float32Array(gate.length);
    geglu(out, gate, up);
    const gelu = (g: number) => 0.5 * g * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (g + 0.044715 * g ** 3)));
    expect(
      worstError(
        out,
        [...gate].map((g, i) => gelu(g) * up[i]),
      ),
    ).toBeLessThan(1e-6);
  });

  it("rope with the model's inverse frequencies turns pair i by position * frequencies[i]", () => {
    const [nHeads, headDim] = [2, 6];
    const frequencies = Float64Array.of(1, 0.3, 0.02);
    const positions = [0, 2, 9];
    const x = randoms(positions.length * nHeads * headDim);
    const original = [...x];
    rope(x, positions, nHeads, headDim, frequencies);
    const want = [...original];
    positions.forEach((p, r) => {
      for (let h = 0; h < nHeads; h++) {
        for (let pair = 0; pair < headDim / 2; pair++) {
          const angle = p * frequencies[pair];
          const at = (r * nHeads + h) * headDim + 2 * pair;
          const [a, b] = [original[at], original[at + 1]];
          want[at] = a * Math.cos(angle) - b * Math.sin(angle);
          want[at + 1] = a * Math.sin(angle) + b * Math.cos(angle);
        }
      }
    });
    expect(worstError(x, want)).toBeLessThan(1e-6);
  });
});

describe("pagedAttention's options, against a float64 definition", () => {
  const [nHeads, nKvHeads, headDim, blockSize] = [4, 2, 4, 2];
  const kvDim = nKvHeads * headDim;
  const [position, rows] = [6, 3]; // 6 positions cached before, new rows at 6, 7, 8
  const blockTable = [3, 0, 4, 1, 2];
  const kv: PagedKv = {
    k: new Float32Array(5 * blockSize * kvDim),
    v: new Float32Array(5 * blockSize * kvDim),
    layerOffset: 0,
    blockSize,
    kvDim,
  };
  const keys = Array.from({ length: position + rows }, () => [...randoms(kvDim, 3)]);
  const values = Array.from({ length: position + rows }, () => [...randoms(kvDim)]);
  keys.forEach((k, p) => kv.k.set(k, kvRow(kv, blockTable, p)));
  values.forEach((v, p) => kv.v.set(v, kvRow(kv, blockTable, p)));
  const q = randoms(rows * nHeads * headDim, 3);

  /** Row r (position p) over positions max(0, p - window + 1) .. p; score = capped(q·k x scale). */
  function definition(scale: number, cap: number, window: number): number[] {
    const out: number[] = [];
    for (let r = 0; r < rows; r++) {
      const p = position + r;
      const first = window > 0 ? Math.max(0, p - window + 1) : 0;
      for (let h = 0; h < nHeads; h++) {
        const kvh = Math.floor(h / (nHeads / nKvHeads));
        const qv = [...q.subarray((r * nHeads + h) * headDim, (r * nHeads + h + 1) * headDim)];
        const seen = keys.slice(first, p + 1).map((k) => {
          const s = qv.reduce((sum, x, d) => sum + x * k[kvh * headDim + d], 0) * scale;
          return cap > 0 ? cap * Math.tanh(s / cap) : s;
        });
        const max = Math.max(...seen);
        const weights = seen.map((s) => Math.exp(s - max));
        const total = weights.reduce((a, b) => a + b, 0);
        for (let d = 0; d < headDim; d++) {
          out.push(weights.reduce((sum, w, t) => sum + (w / total) * values[first + t][kvh * headDim + d], 0));
        }
      }
    }
    return out;
  }

  const attend = (options: { scale?: number; softcap?: number; window?: number }): Float32Array => {
    const out = new Float32Array(rows * nHeads * headDim).fill(9);
    pagedAttention(out, q, kv, blockTable, position, rows, nHeads, nKvHeads, headDim, options);
    return out;
  };

  it("scales scores by the given scale instead of 1 / sqrt(headDim)", () => {
    expect(worstError(attend({ scale: 0.2 }), definition(0.2, 0, 0))).toBeLessThan(1e-5);
    expect(worstError(attend({}), definition(1 / Math.sqrt(headDim), 0, 0))).toBeLessThan(1e-5);
  });

  it("soft-caps the scaled scores before the softmax", () => {
    // Scores of these magnitudes are well past the cap of 2: capping changes the weights. A scale other than 1, so
    // the cap sees q.k x scale (not q.k / scale).
    const capped = attend({ scale: 0.5, softcap: 2 });
    expect(worstError(capped, definition(0.5, 2, 0))).toBeLessThan(1e-5);
    expect(worstError(capped, definition(0.5, 0, 0))).toBeGreaterThan(1e-2);
  });

  it("sees only the last `window` positions with a sliding window, and everything without one", () => {
    for (const window of [1, 3, 7]) {
      expect(
        worstError(attend({ window }), definition(1 / Math.sqrt(headDim), 0, window)),
        `window ${window}`,
      ).toBeLessThan(1e-5);
    }
    // A window as long as the context is no window at all.
    expect(worstError(attend({ window: position + rows }), definition(1 / Math.sqrt(headDim), 0, 0))).toBeLessThan(
      1e-5,
    );
  });
});
