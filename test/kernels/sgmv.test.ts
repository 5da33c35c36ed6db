// The SGMV kernels (segmented LoRA) against the reference: per row, y += (x A^T) B^T with the row's slot's pair, as
// the cpu backend computes it, for both variants: sgmv-shrink/expand.wgsl and sgmv-shrink/expand-segment.wgsl.
// Ranks 1 to 64 mixed in one batch, absent targets, one-row segments, rows without adapter, a segment longer than
// a tile, and an empty batch.
// Tolerance: max |gpu - cpu| <= 1e-5 x max |cpu| over the updated output.
import { afterAll, describe, expect, it } from "vitest";
import { matmul } from "../../node/engine/backend/cpu/ops.ts";
import { pad4 } from "../../node/engine/backend/webgpu/kernels.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { expectClose, harness, padded, random } from "./harness.ts";

const h = await harness();
afterAll(() => h.close());

interface Case {
  inDim: number;
  outDims: number[];
  maxRank: number;
  /** ranks[slot][target]; 0 = the slot's adapter leaves that target alone; null = empty slot. */
  ranks: (number[] | null)[];
  /** Adapter slot of each row, in processing order (-1: no adapter). */
  rowSlots: number[];
}

async function check(c: Case, seed: number): Promise<{ tiles: number }> {
  const rs = pad4(c.maxRank);
  const slots = c.ranks.length;
  const T = c.rowSlots.length;
  const nLayers = 2;
  const layer = 1;
  const firstTarget = 4; // e.g. gate|up
  const shape = op.loraGroupShape(c.inDim, c.outDims, rs, firstTarget);
  const pairs = c.ranks.map(
    (r, s) =>
      r?.map((rank, t) =>
        rank === 0
          ? undefined
          : {
              rank,
              a: random(rank * c.inDim, seed + 100 * s + t, 0.5),
              b: random(c.outDims[t] * rank, seed + 100 * s + t + 50, 0.5),
            },
      ) ?? null,
  );
  const aPool = new Float32Array(slots * shape.targets * rs * shape.K4 * 4);
  const bPool = new Float32Array(slots * shape.N * rs);
  const rankTable = new Uint32Array(slots * nLayers * 7);
  pairs.forEach((p, s) => {
    if (!p) return;
    const { a, b } = op.packLoraSlot(shape, c.inDim, c.outDims, p);
    aPool.set(a, s * a.length);
    bPool.set(b, s * b.length);
    p.forEach((pair, t) => {
      rankTable[s * nLayers * 7 + layer * 7 + firstTarget + t] = pair?.rank ?? 0;
    });
  });
  const tiles = op.buildTiles(c.rowSlots, (s) => c.ranks[s] !== null);
  const nTiles = tiles.length / 4;
  const ldx = pad4(c.inDim);
  const x = random(T * c.inDim, seed + 1);
  const ldy = shape.N + 2;
  const y0 = random(T * ldy, seed + 2);
  const ldv = 3 * rs + 4;
  const tb = h.buffer(nTiles > 0 ? tiles : new Uint32Array(4));
  const rb = h.buffer(rankTable);
  const got: Float32Array[] = [];
  for (const segments of [false, true]) {
    const yb = h.buffer(y0);
    const vb = h.buffer(random(T * ldv + 4, seed + 3, 100)); // garbage: the shrink writes every column it owns
    await h.run(
      [
        {
          kernel: segments ? "sgmv-shrink-segment" : "sgmv-shrink",
          buffers: [h.buffer(padded(x, T, c.inDim, ldx)), h.buffer(aPool), tb, rb, vb],
        },
        {
          kernel: segments ? "sgmv-expand-segment" : "sgmv-expand",
          variant: segments ? { constants: { RS4: rs / 4 } } : {},
          buffers: [vb, h.buffer(bPool), tb, rb, yb],
        },
      ],
      (enc, [shrink, expand]) => {
        op.sgmvShrink(enc, shrink, shape, { nTiles, layer, ldx4: ldx / 4, ldv, rankStride: nLayers * 7, segments });
        op.sgmvExpand(enc, expand, shape, { nTiles, layer, ldv4: ldv / 4, ldy, yOff: 1, rankStride: nLayers * 7 });
      },
    );
    got.push(await h.readF32(yb, T * ldy));
  }

  const expected = y0.slice();
  c.rowSlots.forEach((slot, r) => {
    const p = slot >= 0 ? pairs[slot] : null;
    if (!p) return;
    let off = 0;
    p.forEach((pair, t) => {
      if (pair) {
        const v = new Float32Array(pair.rank);
        matmul(v, x.subarray(r * c.inDim, (r + 1) * c.inDim), pair.a, 1, c.inDim, pair.rank);
        const dy = new Float32Array(c.outDims[t]);
        matmul(dy, v, pair.b, 1, pair.rank, c.outDims[t]);
        for (let n = 0; n < c.outDims[t]; n++) expected[r * ldy + 1 + off + n] += dy[n];
      }
      off += c.outDims[t];
    });
  });
  expectClose(got[0], expected, 1e-5, "portable");
  expectClose(got[1], expected, 1e-5, "segments");
  return { tiles: nTiles };
}

describe("SGMV shrink + expand", () => {
  for (const rank of [1, 2, 3, 4, 5, 8, 16, 33, 64]) {
    it(`rank ${rank}, one target, every row with the adapter`, async () => {
      await check({ inDim: 37, outDims: [29], maxRank: rank, ranks: [[rank]], rowSlots: [0, 0, 0, 0, 0, 0] }, rank);
    });
  }
  it("four adapters of mixed ranks (1..64), three targets of different widths, an absent target, rows without adapter", async () => {
    const { tiles } = await check(
      {
        inDim: 66,
        outDims: [64, 17, 17],
        maxRank: 64,
        ranks: [
          [8, 8, 8],
          [1, 0, 3],
          [64, 64, 64],
          [5, 13, 2],
        ],
        // a 20-row segment (2 tiles), one-row segments, no-adapter rows between
        rowSlots: [-1, ...Array<number>(20).fill(0), 1, -1, -1, 2, 3, 3, -1, 2],
      },
      7,
    );
    expect(tiles).toBe(2 + 1 + 1 + 1 + 1);
  });
  it("an empty slot and slot -1 rows skip; a batch with no adapter rows dispatches nothing and changes nothing", async () => {
    await check({ inDim: 5, outDims: [3, 7], maxRank: 6, ranks: [null, [6, 2]], rowSlots: [0, 0, 1, -1, 0, 1] }, 8);
    const none = await check({ inDim: 5, outDims: [3], maxRank: 4, ranks: [[4]], rowSlots: [-1, -1, -1] }, 9);
    expect(none.tiles).toBe(0);
  });
  it("a single row", async () => {
    await check({ inDim: 1, outDims: [1], maxRank: 1, ranks: [[1]], rowSlots: [0] }, 10);
  });
});

describe("buildTiles", () => {
  it("cuts runs of one filled slot into tiles of at most SEGMENT_ROWS (16) rows", () => {
    expect(op.SEGMENT_ROWS).toBe(16);
    const tiles = op.buildTiles([...Array<number>(18).fill(2), 1, -1, 1, 0, 0], (s) => s !== 0);
    expect(Array.from(tiles)).toEqual([0, 16, 2, 0, 16, 2, 2, 0, 18, 1, 1, 0, 20, 1, 1, 0]);
    expect(op.buildTiles([], () => true).length).toBe(0);
  });
});
