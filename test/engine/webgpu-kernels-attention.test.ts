// Attention kernels against a host reference: attention.wgsl (one invocation per row and head) and the split
// along the context (attention-split.wgsl + attention-reduce.wgsl, flash-decoding), over a paged KV pool with
// scrambled block tables, grouped-query heads, contexts of several hundred positions and of a few in one batch,
// with and without soft-cap and sliding window. Tolerance: ATT_TOL relative to max(1, max |out|) (float32 sums
// in another order; the split's partitions rescale by exp(m_i - M)). Then the backend on stories260K with the
// split against the cpu backend: logits within LOGIT_TOL (the parity tolerance of webgpu.test.ts).
import { afterAll, describe, expect, it } from "vitest";
import type { SequenceStep } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { createWebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { relDiff } from "../../scripts/gpu/parity-lib.ts";
import { harness, random } from "../kernels/harness.ts";
import { demoAdapter, stories } from "../helpers/stories.ts";
import { kernelsOfStep } from "./webgpu-kernels-helpers.ts";

const ATT_TOL = 1e-5;
const LOGIT_TOL = 1e-4;
const N_HEADS = 4;
const N_KV_HEADS = 2;
const HEAD_DIM = 8;
const KV_DIM = N_KV_HEADS * HEAD_DIM;
const BLOCK = 16;
const NUM_BLOCKS = 96;
/** Each row's sequence and position: long decode rows, a 2-row chunk, and short contexts in the same batch. */
const ROWS = [
  { seq: 0, position: 449 },
  { seq: 1, position: 298 },
  { seq: 1, position: 299 },
  { seq: 2, position: 36 },
  { seq: 3, position: 0 },
  { seq: 4, position: 310 },
];
const T = ROWS.length;
const LDQ = (N_HEADS + 2 * N_KV_HEADS) * HEAD_DIM;
const LDO = N_HEADS * HEAD_DIM;

const rig = await harness();
afterAll(() => rig.close());

// Block tables in a scrambled order (not sorted); sequences share some blocks, as with a shared prefix.
const blocksPerSeq = Math.ceil(450 / BLOCK);
const tableOf = (seq: number) =>
  Array.from({ length: blocksPerSeq }, (_, i) => ((seq * 19 + i) * 37 + 11) % NUM_BLOCKS);
const q = random(T * LDQ, 1);
const kPool = random(NUM_BLOCKS * BLOCK * KV_DIM, 2);
const vPool = random(NUM_BLOCKS * BLOCK * KV_DIM, 3);

/** The reference: softmax over each row's positions (window-limited), float64. */
function reference(a: { scale: number; softcap: number; window: number }): Float32Array {
  const out = new Float32Array(T * LDO);
  ROWS.forEach(({ seq, position }, r) => {
    const table = tableOf(seq);
    const first = a.window > 0 ? Math.max(0, position + 1 - a.window) : 0;
    for (let h = 0; h < N_HEADS; h++) {
      const kvCol = Math.floor(h / (N_HEADS / N_KV_HEADS)) * HEAD_DIM;
      const scores: number[] = [];
      const rows: number[] = [];
      for (let t = first; t <= position; t++) {
        const row = table[Math.floor(t / BLOCK)] * BLOCK + (t % BLOCK);
        let s = 0;
        for (let d = 0; d < HEAD_DIM; d++)
          s += q[r * LDQ + h * HEAD_DIM + d] * a.scale * kPool[row * KV_DIM + kvCol + d];
        scores.push(a.softcap > 0 ? a.softcap * Math.tanh(s / a.softcap) : s);
        rows.push(row);
      }
      const m = Math.max(...scores);
      const w = scores.map((s) => Math.exp(s - m));
      const l = w.reduce((x, y) => x + y, 0);
      for (let d = 0; d < HEAD_DIM; d++) {
        let acc = 0;
        rows.forEach((row, i) => (acc += w[i] * vPool[row * KV_DIM + kvCol + d]));
        out[r * LDO + h * HEAD_DIM + d] = acc / l;
      }
    }
  });
  return out;
}

async function runAttention(
  a: { scale: number; softcap: number; window: number },
  plan: { nParts: number; partLen: number } | null,
): Promise<Float32Array> {
  const blocks: number[] = [];
  const tables = new Uint32Array(T);
  const offsets = new Map<number, number>();
  ROWS.forEach(({ seq }, r) => {
    if (!offsets.has(seq)) {
      offsets.set(seq, blocks.length);
      blocks.push(...tableOf(seq));
    }
    tables[r] = offsets.get(seq)!;
  });
  const common = [
    rig.buffer(q),
    rig.buffer(kPool),
    rig.buffer(vPool),
    rig.buffer(Uint32Array.from(ROWS, (row) => row.position)),
    rig.buffer(tables),
    rig.buffer(Uint32Array.from(blocks)),
  ];
  const out = rig.buffer(random(T * LDO, 4, 100)); // garbage: every element must be written
  const variant = { constants: { HEAD_DIM } };
  const args: op.AttentionArgs = {
    T,
    nHeads: N_HEADS,
    nKvHeads: N_KV_HEADS,
    headDim: HEAD_DIM,
    kvDim: KV_DIM,
    ldq: LDQ,
    ldo: LDO,
    blockSize: BLOCK,
    ...a,
  };
  if (!plan) {
    await rig.run([{ kernel: "attention", variant, buffers: [...common, out] }], (enc, [site]) =>
      op.attention(enc, site, args),
    );
  } else {
    const partials = rig.buffer(random(op.attentionPartialsFloats(N_HEADS, HEAD_DIM), 5, 100));
    await rig.run(
      [
        { kernel: "attention-split", variant, buffers: [...common, partials] },
        { kernel: "attention-reduce", variant, buffers: [partials, out] },
      ],
      (enc, [split, reduce]) => op.attentionSplit(enc, { split, reduce }, args, plan),
    );
  }
  return rig.readF32(out, T * LDO);
}

const SCALE = 1 / Math.sqrt(HEAD_DIM);
const CASES = [
  { name: "plain", scale: SCALE, softcap: 0, window: 0 },
  { name: "soft-capped, sliding window of 100", scale: SCALE * 4, softcap: 5, window: 100 },
];

describe("attention kernels against the host reference", () => {
  for (const c of CASES) {
    it(`${c.name}: one pass, and split into 1, 7 and 16 partitions, equal the reference`, async () => {
      const ref = reference(c);
      expect(relDiff(await runAttention(c, null), ref)).toBeLessThanOrEqual(ATT_TOL);
      // 450 positions: 1 partition of all, 7 of 65 (the last partial), 16 of 29 (rows of 37 positions leave
      // most partitions empty).
      for (const plan of [
        { nParts: 1, partLen: 450 },
        { nParts: 7, partLen: 65 },
        { nParts: 16, partLen: 29 },
      ]) {
        expect(relDiff(await runAttention(c, plan), ref), `${plan.nParts} partitions`).toBeLessThanOrEqual(ATT_TOL);
      }
    });
  }

  it("splits passes of few rows and long contexts only, into partitions that cover the context", () => {
    const { minWork, maxRows, maxParts, minPart } = op.ATTENTION_SPLIT;
    expect(op.attentionSplitPlan(1, minWork / 64 - 1, 64)).toBeNull();
    expect(op.attentionSplitPlan(1, minWork / 8 - 1, 8)).toBeNull();
    expect(op.attentionSplitPlan(maxRows + 1, 4096, 64)).toBeNull();
    expect(op.attentionSplitPlan(1, 2 * minPart - 1, 1024)).toBeNull(); // too short for two partitions
    expect(op.attentionSplitPlan(1, 2 * minPart - 1, 8, true)).toBeNull();
    expect(op.attentionSplitPlan(maxRows + 1, 4096, 8, true)).toBeNull();
    expect(op.attentionSplitPlan(1, 2 * minPart, 8, true)).toEqual({ nParts: 2, partLen: minPart });
    for (const [rows, context, headDim] of [
      [1, minWork / 64, 64],
      [1, minWork / 8, 8],
      [maxRows, 450, 128],
      [3, 4096, 64],
      [1, 100_000, 64],
    ]) {
      const plan = op.attentionSplitPlan(rows, context, headDim)!;
      expect(plan.nParts).toBeGreaterThan(1);
      expect(plan.nParts).toBeLessThanOrEqual(maxParts);
      expect(plan.partLen).toBeGreaterThanOrEqual(minPart);
      expect(plan.nParts * plan.partLen).toBeGreaterThanOrEqual(context);
      expect((plan.nParts - 1) * plan.partLen).toBeLessThan(context); // no partition starts past the context
    }
  });

  it("refuses a split its partials buffer cannot hold", () => {
    const args = { T: 17, nHeads: 1, nKvHeads: 1, headDim: 8, kvDim: 8, ldq: 8, ldo: 8, blockSize: 16 };
    const sites = { split: null!, reduce: null! };
    expect(() => op.attentionSplit(null!, sites, args, { nParts: 2, partLen: 300 })).toThrow(RangeError);
    expect(() => op.attentionSplit(null!, sites, { ...args, T: 1 }, { nParts: 17, partLen: 30 })).toThrow(/17/);
  });
});

describe("the backend with split attention", () => {
  it("matches the cpu backend on decode rows of 451, 301 and 21 positions in one batch", async () => {
    const model = await stories();
    const options = { numBlocks: 80, blockSize: 16, adapterSlots: 1, maxRank: 16 };
    const gpu = await createWebGpuBackend(model.weights, { ...options, attention: "split" });
    const cpu = createCpuBackend(model.weights, options);
    try {
      expect(gpu.kernels.attention).toBe("split");
      const adapter = await demoAdapter("dragon", options.maxRank);
      await gpu.setAdapter(0, adapter);
      await cpu.setAdapter(0, adapter);
      const text = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 1 + ((i * 37 + seed) % 500));
      const table = (first: number) => Array.from({ length: 29 }, (_, i) => first + i);
      const seqs: SequenceStep[] = [
        { tokens: text(450, 0), position: 0, blockTable: table(0), slot: -1 },
        { tokens: text(300, 7), position: 0, blockTable: table(29), slot: 0 },
        { tokens: text(20, 3), position: 0, blockTable: table(58).slice(0, 2), slot: -1 },
      ];
      // The prefills (too many rows to split) fill the KV pools of both backends.
      for (const s of seqs) {
        await gpu.forward([s]);
        await cpu.forward([s]);
      }
      let step = seqs.map((s) => ({ ...s, tokens: [42], position: s.tokens.length }));
      // Head dimension 8: the threshold (ATTENTION_SPLIT.minWork) would wait for 2048 positions; "split" forces it.
      expect(op.attentionSplitPlan(step.length, 451, model.weights.config.headDim)).toBeNull();
      expect(op.attentionSplitPlan(step.length, 451, model.weights.config.headDim, true)).not.toBeNull();
      for (let i = 0; i < 3; i++) {
        const g = await gpu.forward(step);
        expect(relDiff(g, await cpu.forward(step)), `decode step ${i}`).toBeLessThanOrEqual(LOGIT_TOL);
        step = step.map((s) => ({ ...s, tokens: [100 + i], position: s.position + 1 }));
      }
      expect(await kernelsOfStep(gpu, step)).toContain("attention-split");
      // The third sequence alone: 25 positions, too short for two partitions.
      expect(await kernelsOfStep(gpu, [step[2]])).not.toContain("attention-split");
    } finally {
      await gpu.close();
    }
  });
});
