// The cpu operators write only the rows they are given: the backend's buffers are sized for the largest step, so a
// step of fewer rows leaves a tail that belongs to no one, and rmsnorm runs in place (out = x) row after row. And
// attention reads only the positions a row may see: the pool past them holds other sequences' or stale K/V.
import { describe, expect, it } from "vitest";
import { matmul, pagedAttention, rmsnorm } from "../../node/engine/backend/cpu/ops.ts";

const SENTINEL = 7;

describe("cpu operators stay inside their rows", () => {
  it("rmsnorm in place over several rows gives each row what it gives alone, and leaves the tail", () => {
    const [rows, dim] = [3, 4];
    const weight = Float32Array.of(1, 2, 3, 4);
    const x = new Float32Array((rows + 1) * dim).fill(SENTINEL);
    x.set([1, -2, 3, 0.5, 4, 4, -1, 2, 0.25, 0, -3, 1]);
    const alone = [0, 1, 2].map((r) => {
      const row = x.slice(r * dim, (r + 1) * dim);
      rmsnorm(row, row, weight, 1, dim, 1e-5);
      return [...row];
    });
    rmsnorm(x, x, weight, rows, dim, 1e-5);
    expect([...x.subarray(0, rows * dim)]).toEqual(alone.flat());
    expect([...x.subarray(rows * dim)]).toEqual([SENTINEL, SENTINEL, SENTINEL, SENTINEL]);
  });

  it("matmul writes rows x outDim values and nothing after them", () => {
    const [rows, inDim, outDim] = [2, 3, 2];
    // Rows summing to 6 and 2, not 1: a row's dot with a row of SENTINELs is no SENTINEL, so a write past outDim shows.
    const x = Float32Array.of(1, 2, 3, -1, 0, 3, SENTINEL, SENTINEL, SENTINEL);
    const w = Float32Array.of(1, 0, 1, 0.5, -1, 2, SENTINEL, SENTINEL, SENTINEL);
    const out = new Float32Array((rows + 1) * outDim).fill(SENTINEL);
    matmul(out, x, w, rows, inDim, outDim);
    expect([...out]).toEqual([4, 4.5, 2, 5.5, SENTINEL, SENTINEL]);
  });

  it("pagedAttention: a row attends to no later position, however large that position's score", () => {
    // Two new rows at positions 0 and 1 (the cache already holds both rows' K/V), one head of 4. Row 1's K scores
    // 2,000 against row 0's query: in row 0's softmax it would leave exp(real - 2,000) = 0 for the real position.
    const kv = { k: new Float32Array(16), v: new Float32Array(16), layerOffset: 0, blockSize: 4, kvDim: 4 };
    kv.k.set([0.5, -1, 0.25, 2, 1000, 1000, 1000, 1000]);
    kv.v.set([1, 2, 3, 4, 5, 6, 7, 8]);
    const out = new Float32Array(8);
    pagedAttention(out, new Float32Array(8).fill(1), kv, [0], 0, 2, 1, 1, 4);
    // Row 0 sees only itself; row 1 sees both, and its own score outweighs position 0's by 2,000 - 0.875.
    expect([...out]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
