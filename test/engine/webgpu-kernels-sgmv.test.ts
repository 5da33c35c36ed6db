// SGMV (segmented LoRA) kernels against a host reference: the portable pair (sgmv-shrink/expand.wgsl) and the
// segment pair for GPUs (sgmv-*-segment.wgsl), on one target group of three targets with mixed ranks (some 0),
// segments longer than a tile, one-row segments and rows without adapter, at layer 1 of 2 (rank table offset).
// Tolerance: SGMV_TOL relative to max(1, max |y|) (float32 sums in another order); rows without adapter and
// columns of targets an adapter leaves alone are compared exactly. Then the segment kernels inside the backend
// on stories260K against the cpu backend: logits within LOGIT_TOL (the parity tolerance of webgpu.test.ts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SequenceStep } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { createWebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { InvalidOptionError } from "../../node/engine/errors.ts";
import { relDiff } from "../../scripts/gpu/parity-lib.ts";
import { demoAdapter, stories } from "../helpers/stories.ts";
import { kernelRig, kernelsOfStep, randomFloats, type KernelRig } from "./webgpu-kernels-helpers.ts";

const SGMV_TOL = 1e-5;
const LOGIT_TOL = 1e-4;
const IN_DIM = 100; // K4 = 25: two stages of the segment shrink, the second partial
const OUT_DIMS = [24, 12, 12];
const RS = 8;
const LAYERS = 2;
const LAYER = 1;
/** Per slot, the rank of each of the three targets at LAYER (0: the adapter leaves the target alone). */
const SLOT_RANKS = [
  [8, 8, 8],
  [3, 0, 5],
  [8, 2, 0],
];
/** Each row's slot, in processing order: a 20-row segment (two tiles), rows without adapter, one-row segments. */
const ROW_SLOTS = [
  ...Array<number>(20).fill(0),
  -1,
  -1,
  1,
  ...Array<number>(5).fill(2),
  0,
  ...Array<number>(11).fill(1),
  -1,
];
const LDX = 4 * Math.ceil(IN_DIM / 4);

let rig: KernelRig;
beforeAll(async () => {
  rig = await kernelRig();
});
afterAll(() => rig?.close());

const shape = op.loraGroupShape(IN_DIM, OUT_DIMS, RS, 0);
const N = shape.N;
const T = ROW_SLOTS.length;
const x = randomFloats(T * LDX, 1);
for (let r = 0; r < T; r++) x.fill(0, r * LDX + IN_DIM, (r + 1) * LDX); // columns past K are zero
const y0 = randomFloats(T * N, 2);
const pairs = SLOT_RANKS.map((ranks, slot) =>
  ranks.map((rank, t) =>
    rank === 0
      ? undefined
      : {
          rank,
          a: randomFloats(rank * IN_DIM, 10 + slot * 3 + t, 0.1),
          b: randomFloats(OUT_DIMS[t] * rank, 20 + slot * 3 + t, 0.1),
        },
  ),
);

/** y0 plus each row's LoRA delta, computed in float64 on the host. */
function reference(): Float32Array {
  const y = Float32Array.from(y0);
  ROW_SLOTS.forEach((slot, r) => {
    if (slot < 0) return;
    let col = 0;
    OUT_DIMS.forEach((outDim, t) => {
      const pair = pairs[slot][t];
      if (pair) {
        const v = Array.from({ length: pair.rank }, (_, j) => {
          let s = 0;
          for (let k = 0; k < IN_DIM; k++) s += x[r * LDX + k] * pair.a[j * IN_DIM + k];
          return s;
        });
        for (let n = 0; n < outDim; n++) {
          let s = 0;
          for (let j = 0; j < pair.rank; j++) s += v[j] * pair.b[n * pair.rank + j];
          y[r * N + col + n] += s;
        }
      }
      col += outDim;
    });
  });
  return y;
}

async function runSgmv(kind: op.SgmvKind): Promise<Float32Array> {
  const slots = SLOT_RANKS.length;
  const packed = pairs.map((p) => op.packLoraSlot(shape, IN_DIM, OUT_DIMS, p));
  const aPool = new Float32Array(slots * packed[0].a.length);
  const bPool = new Float32Array(slots * packed[0].b.length);
  packed.forEach((p, slot) => {
    aPool.set(p.a, slot * p.a.length);
    bPool.set(p.b, slot * p.b.length);
  });
  const rankTable = new Uint32Array(slots * LAYERS * 7);
  SLOT_RANKS.forEach((ranks, slot) =>
    ranks.forEach((rank, t) => (rankTable[slot * LAYERS * 7 + LAYER * 7 + t] = rank)),
  );
  const tiles = op.buildTiles(ROW_SLOTS, () => true);
  const ldv = shape.targets * RS;
  const b = {
    x: rig.buffer(x),
    a: rig.buffer(aPool),
    b: rig.buffer(bPool),
    tiles: rig.buffer(tiles),
    ranks: rig.buffer(rankTable),
    // v starts as garbage: the shrink must write every column of its rows, zeros included.
    v: rig.buffer(randomFloats(T * ldv, 3, 100)),
    y: rig.buffer(Float32Array.from(y0)),
  };
  const segments = kind === "segments";
  await rig.run(
    [
      { kernel: segments ? "sgmv-shrink-segment" : "sgmv-shrink", buffers: [b.x, b.a, b.tiles, b.ranks, b.v] },
      {
        kernel: segments ? "sgmv-expand-segment" : "sgmv-expand",
        variant: segments ? { constants: { RS4: RS / 4 } } : {},
        buffers: [b.v, b.b, b.tiles, b.ranks, b.y],
      },
    ],
    (enc, [shrink, expand]) =>
      op.sgmv(
        enc,
        { shape, targets: ["q", "k", "v"], a: b.a, b: b.b, shrink, expand, segments },
        { nTiles: tiles.length / 4, layer: LAYER, ldx: LDX, ldy: N, ldv, rankStride: LAYERS * 7 },
      ),
  );
  return rig.read(b.y, T * N);
}

describe("SGMV kernels against the host reference", () => {
  it("cuts segments into tiles of at most SEGMENT_ROWS rows and skips rows without adapter", () => {
    const tiles = Array.from(op.buildTiles(ROW_SLOTS, (slot) => slot !== 2));
    expect(op.SEGMENT_ROWS).toBe(16);
    expect(tiles).toEqual([0, 16, 0, 0, 16, 4, 0, 0, 22, 1, 1, 0, 28, 1, 0, 0, 29, 11, 1, 0]);
  });

  for (const kind of ["portable", "segments"] as const) {
    it(`${kind}: every row gets its own adapter's delta (mixed ranks, 1- to 16-row tiles)`, async () => {
      const y = await runSgmv(kind);
      const ref = reference();
      expect(relDiff(y, ref)).toBeLessThanOrEqual(SGMV_TOL);
      ROW_SLOTS.forEach((slot, r) => {
        // Untouched exactly: rows without adapter, and slot 1's k columns (rank 0).
        const untouched = slot < 0 ? [0, N] : slot === 1 ? [OUT_DIMS[0], OUT_DIMS[0] + OUT_DIMS[1]] : null;
        if (!untouched) return;
        const [from, to] = untouched;
        expect(Array.from(y.subarray(r * N + from, r * N + to)), `row ${r}`).toEqual(
          Array.from(y0.subarray(r * N + from, r * N + to)),
        );
      });
    });
  }
});

describe("the backend with the segment SGMV kernels", () => {
  it("matches the cpu backend on a batch of a 20-row segment, one-row segments and rows without adapter", async () => {
    const model = await stories();
    const options = { numBlocks: 32, blockSize: 16, adapterSlots: 3, maxRank: 16 };
    const gpu = await createWebGpuBackend(model.weights, { ...options, sgmv: "segments" });
    const cpu = createCpuBackend(model.weights, options);
    try {
      expect(gpu.kernels.sgmv).toBe("segments");
      for (const [slot, name] of (["dragon", "ocean", "robot"] as const).entries()) {
        const adapter = await demoAdapter(name, options.maxRank);
        await gpu.setAdapter(slot, adapter);
        await cpu.setAdapter(slot, adapter);
      }
      const prompt = Array.from({ length: 20 }, (_, i) => 1 + ((i * 37) % 500));
      const steps: SequenceStep[] = [
        { tokens: prompt, position: 0, blockTable: [0, 1], slot: 0 },
        { tokens: prompt.slice(0, 3), position: 0, blockTable: [2], slot: 1 },
        { tokens: prompt.slice(0, 2), position: 0, blockTable: [3], slot: -1 },
        { tokens: prompt.slice(0, 1), position: 0, blockTable: [4], slot: 2 },
        { tokens: prompt.slice(0, 5), position: 0, blockTable: [5], slot: 0 },
      ];
      expect(relDiff(await gpu.forward(steps), await cpu.forward(steps))).toBeLessThanOrEqual(LOGIT_TOL);
      // A decode step of the same sequences: five rows, four segments.
      const decode = steps.map((s) => ({ ...s, tokens: [300], position: s.tokens.length }));
      expect(relDiff(await gpu.forward(decode), await cpu.forward(decode))).toBeLessThanOrEqual(LOGIT_TOL);
      const kernels = await kernelsOfStep(
        gpu,
        decode.map((s) => ({ ...s, position: s.position + 1 })),
      );
      expect(kernels).toContain("sgmv-shrink-segment");
      expect(kernels).toContain("sgmv-expand-segment");
    } finally {
      await gpu.close();
    }
  });

  it("refuses an SGMV kernel it does not have, by name", async () => {
    const model = await stories();
    const options = { numBlocks: 4, blockSize: 16, adapterSlots: 1, maxRank: 4, sgmv: "fast" as op.SgmvKind };
    await expect(createWebGpuBackend(model.weights, options)).rejects.toThrow(InvalidOptionError);
    await expect(createWebGpuBackend(model.weights, options)).rejects.toThrow(/sgmv: unknown sgmv kernel "fast"/);
  });
});
