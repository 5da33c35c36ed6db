// The kernel variants chosen at start-up (node/engine/backend/webgpu/kernel-plan.ts), each timed against the one
// it replaces on the same shapes and buffers, trials alternating between the two so that a disturbance of the
// machine hits both alike: SGMV portable -> segments, attention single -> split, RMSNorm + split-k matvec ->
// fused, tiled matmul f32 -> f16 stages. Microseconds per call, best of the trials; ratio = before / after.
import {
  ParamArena,
  Pipelines,
  StepEncoder,
  type KernelName,
  type KernelVariant,
  type Site,
} from "../../node/engine/backend/webgpu/kernels.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { storageBuffer, uploadMatrix } from "../../node/engine/backend/webgpu/tensors.ts";
import type { GpuContext } from "../../node/engine/backend/webgpu/device.ts";
import { quantizeMatrix } from "../../node/engine/formats/weight-codec.ts";

type Sites = { kernel: KernelName; variant?: KernelVariant; buffers: GPUBuffer[] }[];
type Encode = (enc: StepEncoder, sites: Site[]) => void;

export interface VariantRow {
  kernel: string;
  shape: string;
  before: string;
  after: string;
  beforeMicroseconds: number;
  afterMicroseconds: number;
  ratio: number;
}

/** Seeded values in [-scale, scale) (a linear congruential generator: the same data on every run). */
export function randomData(n: number, scale = 1, seed = 777): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = (((s >>> 8) / 16777216) * 2 - 1) * scale;
  }
  return a;
}

/** Every variant pair on this device; quick: smaller shapes and fewer repetitions (lavapipe). */
export async function benchKernelVariants(
  ctx: GpuContext,
  quick: boolean,
  log: (line: string) => void,
): Promise<VariantRow[]> {
  const { device } = ctx;
  const pipelines = new Pipelines(device);
  const owned: GPUBuffer[] = [];
  const buffer = (bytes: number, data?: Float32Array | Uint32Array): GPUBuffer => {
    const b = storageBuffer(device, "bench", bytes, data);
    owned.push(b);
    return b;
  };
  const reps = quick ? 3 : 20;
  const trials = quick ? 3 : 5;
  const rows: VariantRow[] = [];

  /** Times two recordings alternately; returns microseconds per call of each. */
  const pair = async (
    row: Omit<VariantRow, "beforeMicroseconds" | "afterMicroseconds" | "ratio">,
    before: [Sites, Encode],
    after: [Sites, Encode],
  ): Promise<void> => {
    const runs = [before, after].map(([sites, encode]) => {
      const arena = new ParamArena(device);
      const made = sites.map((d, i) => arena.define(`v${i}`, pipelines.get(d.kernel, d.variant), d.buffers));
      arena.finish();
      return {
        arena,
        run: async (n: number) => {
          const enc = new StepEncoder(device, arena);
          for (let i = 0; i < n; i++) encode(enc, made);
          enc.submit(device.queue);
          await device.queue.onSubmittedWorkDone();
        },
      };
    });
    for (const r of runs) await r.run(1); // pipeline compile, first touch
    const best = [Infinity, Infinity];
    for (let t = 0; t < trials; t++) {
      for (let i = 0; i < 2; i++) {
        const start = performance.now();
        await runs[i].run(reps);
        best[i] = Math.min(best[i], ((performance.now() - start) * 1000) / reps);
      }
    }
    for (const r of runs) r.arena.destroy();
    const done = { ...row, beforeMicroseconds: best[0], afterMicroseconds: best[1], ratio: best[0] / best[1] };
    rows.push(done);
    const [us0, us1] = best.map((us) => `${us.toFixed(0)} us`);
    log(`${row.kernel} ${row.shape}: ${row.before} ${us0}, ${row.after} ${us1}, ${done.ratio.toFixed(2)}x`);
  };

  // SGMV: one target h x h, rank 16, batch of distinct adapters and of one shared adapter.
  const h = quick ? 1024 : 4096;
  const rank = 16;
  const slots = 64;
  const shape = op.loraGroupShape(h, [h], rank, 0);
  const aPool = buffer(slots * rank * h * 4, randomData(slots * rank * h, 0.02));
  const bPool = buffer(slots * h * rank * 4, randomData(slots * h * rank, 0.02));
  const ranks = buffer(slots * 7 * 4, new Uint32Array(slots * 7).fill(rank));
  const xs = buffer(64 * h * 4, randomData(64 * h));
  const ys = buffer(64 * h * 4);
  const vs = buffer(64 * rank * 4);
  for (const batch of quick ? [1, 16] : [1, 16, 64]) {
    for (const mode of ["distinct", "shared"] as const) {
      const table = op.buildTiles(
        Array.from({ length: batch }, (_, i) => (mode === "distinct" ? i : 0)),
        () => true,
      );
      const tiles = buffer(table.byteLength, table);
      const args = { nTiles: table.length / 4, layer: 0, ldx: h, ldy: h, ldv: rank, rankStride: 7 };
      const variant = (segments: boolean): [Sites, Encode] => [
        [
          { kernel: segments ? "sgmv-shrink-segment" : "sgmv-shrink", buffers: [xs, aPool, tiles, ranks, vs] },
          {
            kernel: segments ? "sgmv-expand-segment" : "sgmv-expand",
            variant: segments ? { constants: { RS4: rank / 4 } } : {},
            buffers: [vs, bPool, tiles, ranks, ys],
          },
        ],
        (enc, [shrink, expand]) =>
          op.sgmv(enc, { shape, targets: ["q"], a: aPool, b: bPool, shrink, expand, segments }, args),
      ];
      await pair(
        { kernel: "sgmv", shape: `h ${h} rank ${rank} batch ${batch} ${mode}`, before: "portable", after: "segments" },
        variant(false),
        variant(true),
      );
    }
  }

  // Attention, decode rows of the 1B shape (32 heads, 8 KV heads, head dim 64), one sequence per row.
  const [nHeads, nKv, hd, block] = [32, 8, 64, 16];
  for (const T of [1, 4]) {
    for (const context of quick ? [256, 1024] : [256, 1024, 4096]) {
      const perSeq = Math.ceil(context / block);
      const kvDim = nKv * hd;
      const ldq = (nHeads + 2 * nKv) * hd;
      const common = [
        buffer(T * ldq * 4, randomData(T * ldq)),
        buffer(T * perSeq * block * kvDim * 4, randomData(T * perSeq * block * kvDim)),
        buffer(T * perSeq * block * kvDim * 4, randomData(T * perSeq * block * kvDim)),
        buffer(T * 4, new Uint32Array(T).fill(context - 1)),
        buffer(
          T * 4,
          Uint32Array.from({ length: T }, (_, i) => i * perSeq),
        ),
        buffer(
          T * perSeq * 4,
          Uint32Array.from({ length: T * perSeq }, (_, i) => i),
        ),
      ];
      const out = buffer(T * nHeads * hd * 4);
      const partials = buffer(4 * op.attentionPartialsFloats(nHeads, hd));
      const variant = { constants: { HEAD_DIM: hd } };
      const args = { T, nHeads, nKvHeads: nKv, headDim: hd, kvDim, ldq, ldo: nHeads * hd, blockSize: block };
      const plan = op.attentionSplitPlan(T, context, hd, true)!;
      await pair(
        {
          kernel: "attention",
          shape: `1b heads, ${T} rows x ${context} positions`,
          before: "single",
          after: `split ${plan.nParts}`,
        },
        [[{ kernel: "attention", variant, buffers: [...common, out] }], (enc, [site]) => op.attention(enc, site, args)],
        [
          [
            { kernel: "attention-split", variant, buffers: [...common, partials] },
            { kernel: "attention-reduce", variant, buffers: [partials, out] },
          ],
          (enc, [split, reduce]) => op.attentionSplit(enc, { split, reduce }, args, plan),
        ],
      );
    }
  }

  // RMSNorm + q|k|v of the 1B shape (dim 2048, 3072 outputs), f16 weights: separate vs fused (subgroups only).
  if (ctx.hasSubgroups) {
    const dim = 2048;
    const N = 3072;
    const m = uploadMatrix(device, "wqkv", [quantizeMatrix(randomData(N * dim, 0.05), N, dim, "f16")], {
      maxBinding: ctx.maxBinding,
    });
    owned.push(...m.chunks.map((c) => c.buffer));
    const c = m.chunks[0];
    const [x, g, hb, y, lastRows] = [
      buffer(4 * dim * 4, randomData(4 * dim)),
      buffer(dim * 4, randomData(dim)),
      buffer(4 * dim * 4),
      buffer(4 * N * 4),
      buffer(16),
    ];
    const sites = (normed: Site[] | null, matvec: Site[] | null): op.LinearSites => ({
      matrix: m,
      matmul: [],
      tiled: false,
      matvec,
      normed,
    });
    for (const M of [1, 4]) {
      await pair(
        { kernel: "norm + matvec", shape: `${N} x ${dim} f16, ${M} rows`, before: "separate", after: "fused" },
        [
          [
            { kernel: "rmsnorm", buffers: [x, g, lastRows, hb] },
            { kernel: "matvec-splitk", variant: { weights: c.format }, buffers: [hb, c.buffer, y] },
          ],
          (enc, [norm, matvec]) => {
            op.rmsnorm(enc, norm, { R: M, dim, ldx: dim, ldo: dim, eps: 1e-5, gather: false });
            const a = { M, ldx: dim, ldy: N, accumulate: false, kind: "splitk" as const, maxSubgroup: ctx.maxSubgroup };
            op.linear(enc, sites(null, [matvec]), a);
          },
        ],
        [
          [{ kernel: "matvec-splitk-norm", variant: { weights: c.format }, buffers: [x, c.buffer, y, g, hb] }],
          (enc, [fused]) =>
            op.linearNormed(enc, sites([fused], null), {
              M,
              ldx: dim,
              ldy: N,
              normDim: dim,
              eps: 1e-5,
              maxSubgroup: ctx.maxSubgroup,
            }),
        ],
      );
    }
  }

  // Tiled matmul, f16 weights: f32 vs f16 stages (shader-f16 only).
  if (ctx.hasF16) {
    const [M, N, K] = quick ? [64, 1024, 1024] : [256, 2048, 2048];
    const m = uploadMatrix(device, "w", [quantizeMatrix(randomData(N * K, 0.05), N, K, "f16")], {
      maxBinding: ctx.maxBinding,
    });
    owned.push(...m.chunks.map((c) => c.buffer));
    const c = m.chunks[0];
    const [x, y] = [buffer(M * K * 4, randomData(M * K)), buffer(M * N * 4)];
    const a = { M, N: c.rows, K4: m.K4, ldx4: K / 4, ldy: N, yOff: 0, accumulate: false, sOff: c.sOff };
    const variant = (halfAccumulate: boolean): [Sites, Encode] => [
      [{ kernel: "matmul-tiled", variant: { weights: c.format, halfAccumulate }, buffers: [x, c.buffer, y] }],
      (enc, [site]) => op.matmulTiled(enc, site, a),
    ];
    await pair(
      { kernel: "matmul-tiled", shape: `${M} x ${N} x ${K} f16 weights`, before: "f32 stages", after: "f16 stages" },
      variant(false),
      variant(true),
    );
  }
  for (const b of owned) b.destroy();
  return rows;
}
