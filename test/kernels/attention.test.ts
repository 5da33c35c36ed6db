// kv-store.wgsl and attention.wgsl: paged, causal, grouped-query attention of prefill chunks and decode rows of
// several sequences in one dispatch, against ops.pagedAttention. Tolerance: max |gpu - cpu| <= 1e-5 x max |cpu|
// (online softmax in f32 against the reference's two passes). Scrambled block tables give bit-identical output.
// Gemma 2's scoring (query_pre_attn_scalar scale, tanh soft-cap) and sliding windows: the same tolerance.
// attention-split.wgsl + attention-reduce.wgsl (flash-decoding) run the same cases with `split`: the same tolerance.
import { afterAll, describe, expect, it } from "vitest";
import { pagedAttention, type AttentionOptions, type PagedKv } from "../../node/engine/backend/cpu/ops.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";
import { expectClose, harness, random, unpadded } from "./harness.ts";

const h = await harness();
afterAll(() => h.close());

interface Seq {
  position: number;
  rows: number;
  blockTable: number[];
}

/**
 * Runs kv-store then attention for the sequences' new rows; cached positions come pre-filled in the pools. With
 * `split`, attention-split + attention-reduce in that many partitions instead of attention.wgsl.
 */
async function run(
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  blockSize: number,
  numBlocks: number,
  seqs: Seq[],
  seed: number,
  scoring: AttentionOptions = {},
  split?: { nParts: number; partLen: number },
) {
  const kvDim = nKvHeads * headDim;
  const dim = nHeads * headDim;
  const ld = dim + 2 * kvDim;
  const poolFloats = numBlocks * blockSize * kvDim;
  const kPool = random(poolFloats, seed);
  const vPool = random(poolFloats, seed + 1);
  const T = seqs.reduce((n, s) => n + s.rows, 0);
  const qkv = random(T * ld, seed + 2);
  const positions: number[] = [];
  const slots: number[] = [];
  const tables: number[] = [];
  const blocks: number[] = [];
  for (const s of seqs) {
    const offset = blocks.length;
    blocks.push(...s.blockTable);
    for (let i = 0; i < s.rows; i++) {
      const p = s.position + i;
      positions.push(p);
      slots.push(s.blockTable[Math.floor(p / blockSize)] * blockSize + (p % blockSize));
      tables.push(offset);
    }
  }
  const kb = h.buffer(kPool);
  const vb = h.buffer(vPool);
  const qb = h.buffer(qkv);
  const out = h.buffer(T * dim * 4);
  const pb = h.buffer(Uint32Array.from(positions));
  const variant = { constants: { HEAD_DIM: headDim } };
  const reads = [qb, kb, vb, pb, h.buffer(Uint32Array.from(tables)), h.buffer(Uint32Array.from(blocks))];
  // Garbage in the partials: every partition writes its own, empty ones included.
  const partials = split ? h.buffer(random(op.attentionPartialsFloats(nHeads, headDim), seed + 3, 100)) : null;
  await h.run(
    [
      { kernel: "kv-store", buffers: [qb, h.buffer(Uint32Array.from(slots)), kb, vb] },
      ...(partials
        ? [
            { kernel: "attention-split" as const, variant, buffers: [...reads, partials] },
            { kernel: "attention-reduce" as const, variant, buffers: [partials, out] },
          ]
        : [{ kernel: "attention" as const, variant, buffers: [...reads, out] }]),
    ],
    (enc, [store, attend, reduce]) => {
      op.kvStore(enc, store, { T, ld, kvDim, kOff: dim, vOff: dim + kvDim });
      const a = { T, nHeads, nKvHeads, headDim, kvDim, ldq: ld, ldo: dim, blockSize, ...scoring };
      if (split) op.attentionSplit(enc, { split: attend, reduce }, a, split);
      else op.attention(enc, attend, a);
    },
  );
  const got = await h.readF32(out, T * dim);

  // Reference: the same writes into CPU pools, then pagedAttention per sequence.
  const kv: PagedKv = { k: kPool.slice(), v: vPool.slice(), layerOffset: 0, blockSize, kvDim };
  slots.forEach((slot, r) => {
    kv.k.set(qkv.subarray(r * ld + dim, r * ld + dim + kvDim), slot * kvDim);
    kv.v.set(qkv.subarray(r * ld + dim + kvDim, r * ld + dim + 2 * kvDim), slot * kvDim);
  });
  const expected = new Float32Array(T * dim);
  const q = unpadded(qkv, T, dim, ld);
  let row = 0;
  for (const s of seqs) {
    pagedAttention(
      expected.subarray(row * dim, (row + s.rows) * dim),
      q.subarray(row * dim, (row + s.rows) * dim),
      kv,
      s.blockTable,
      s.position,
      s.rows,
      nHeads,
      nKvHeads,
      headDim,
      scoring,
    );
    row += s.rows;
  }
  // The pools hold the new rows.
  expectClose(await h.readF32(kb, poolFloats), kv.k, 0, "k pool");
  expectClose(await h.readF32(vb, poolFloats), kv.v, 0, "v pool");
  return { got, expected };
}

function shuffled(n: number, seed: number): number[] {
  const rng = createRng(seed);
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

describe("attention.wgsl over a paged KV pool", () => {
  it("prefill chunks and decode rows of several sequences, grouped-query heads (8 q, 4 kv, head 8)", async () => {
    const blocks = shuffled(40, 1);
    const seqs: Seq[] = [
      { position: 0, rows: 7, blockTable: blocks.slice(0, 2) }, // prefill from scratch
      { position: 21, rows: 1, blockTable: blocks.slice(2, 8) }, // decode
      { position: 16, rows: 5, blockTable: blocks.slice(8, 14) }, // prefill chunk on top of a cache, at a block edge
      { position: 3, rows: 1, blockTable: blocks.slice(14, 15) },
    ];
    const { got, expected } = await run(8, 4, 8, 4, 40, seqs, 10);
    expectClose(got, expected, 1e-5);
  });
  it("multi-query (1 kv head), head 6, block size 1, one long decode row", async () => {
    const blocks = shuffled(300, 2);
    const { got, expected } = await run(
      3,
      1,
      6,
      1,
      300,
      [
        { position: 250, rows: 1, blockTable: blocks.slice(0, 251) },
        { position: 0, rows: 2, blockTable: blocks.slice(251, 253) },
      ],
      20,
    );
    expectClose(got, expected, 1e-5);
  });
  it("head 64, 2 heads per kv head", async () => {
    const blocks = shuffled(20, 3);
    const { got, expected } = await run(
      4,
      2,
      64,
      16,
      20,
      [
        { position: 30, rows: 3, blockTable: blocks.slice(0, 3) },
        { position: 40, rows: 1, blockTable: blocks.slice(3, 6) },
      ],
      30,
    );
    expectClose(got, expected, 1e-5);
  });
  it("Gemma 2 scoring: query_pre_attn_scalar scale and tanh soft-cap of the scores", async () => {
    const blocks = shuffled(20, 4);
    const seqs: Seq[] = [
      { position: 0, rows: 6, blockTable: blocks.slice(0, 2) },
      { position: 30, rows: 1, blockTable: blocks.slice(2, 10) },
    ];
    // Scores of about 0.1 (q·k of random unit-range heads over sqrt(144)) against a cap of 0.05: the cap matters.
    const scoring = { scale: 144 ** -0.5, softcap: 0.05 };
    const { got, expected } = await run(4, 2, 16, 4, 20, seqs, 40, scoring);
    expectClose(got, expected, 1e-5);
    const { expected: uncapped } = await run(4, 2, 16, 4, 20, seqs, 40, { scale: scoring.scale });
    expect(Math.max(...expected.map((x, i) => Math.abs(x - uncapped[i])))).toBeGreaterThan(1e-3);
  });
  it("sliding window: each row sees its last `window` positions only, prefill and decode", async () => {
    const blocks = shuffled(30, 5);
    const seqs: Seq[] = [
      { position: 0, rows: 9, blockTable: blocks.slice(0, 3) }, // rows past the window inside one prefill chunk
      { position: 40, rows: 2, blockTable: blocks.slice(3, 14) },
      { position: 2, rows: 1, blockTable: blocks.slice(14, 15) }, // shorter than the window: all positions
    ];
    const { got, expected } = await run(4, 4, 8, 4, 30, seqs, 50, { window: 5 });
    expectClose(got, expected, 1e-5);
    const { expected: full } = await run(4, 4, 8, 4, 30, seqs, 50);
    expect(Math.max(...expected.map((x, i) => Math.abs(x - full[i])))).toBeGreaterThan(1e-3);
  });
  it("block tables in scrambled order give exactly what contiguous ones give", async () => {
    // The same K/V history placed contiguously and scrambled: identical outputs, bit for bit.
    const nHeads = 4;
    const nKvHeads = 2;
    const headDim = 8;
    const blockSize = 4;
    const kvDim = nKvHeads * headDim;
    const numBlocks = 16;
    const history = random(numBlocks * blockSize * kvDim, 5);
    const values = random(numBlocks * blockSize * kvDim, 6);
    const q = random(nHeads * headDim, 7);
    const position = 50;
    const outputs: Float32Array[] = [];
    for (const table of [Array.from({ length: 13 }, (_, i) => i), shuffled(numBlocks, 8).slice(0, 13)]) {
      const k = new Float32Array(history.length);
      const v = new Float32Array(values.length);
      for (let p = 0; p < position; p++) {
        const slot = table[Math.floor(p / blockSize)] * blockSize + (p % blockSize);
        k.set(history.subarray(p * kvDim, (p + 1) * kvDim), slot * kvDim);
        v.set(values.subarray(p * kvDim, (p + 1) * kvDim), slot * kvDim);
      }
      const qkv = new Float32Array(nHeads * headDim + 2 * kvDim);
      qkv.set(q);
      qkv.set(history.subarray(position * kvDim, (position + 1) * kvDim), nHeads * headDim);
      qkv.set(values.subarray(position * kvDim, (position + 1) * kvDim), nHeads * headDim + kvDim);
      const kb = h.buffer(k);
      const vb = h.buffer(v);
      const qb = h.buffer(qkv);
      const out = h.buffer(nHeads * headDim * 4);
      const slot = table[Math.floor(position / blockSize)] * blockSize + (position % blockSize);
      const pb = h.buffer(Uint32Array.from([position]));
      await h.run(
        [
          { kernel: "kv-store", buffers: [qb, h.buffer(Uint32Array.from([slot])), kb, vb] },
          {
            kernel: "attention",
            variant: { constants: { HEAD_DIM: headDim } },
            buffers: [qb, kb, vb, pb, h.buffer(Uint32Array.from([0])), h.buffer(Uint32Array.from(table)), out],
          },
        ],
        (enc, [store, attend]) => {
          op.kvStore(enc, store, {
            T: 1,
            ld: qkv.length,
            kvDim,
            kOff: nHeads * headDim,
            vOff: nHeads * headDim + kvDim,
          });
          op.attention(enc, attend, {
            T: 1,
            nHeads,
            nKvHeads,
            headDim,
            kvDim,
            ldq: qkv.length,
            ldo: nHeads * headDim,
            blockSize,
          });
        },
      );
      outputs.push(await h.readF32(out, nHeads * headDim));
    }
    expect(Array.from(outputs[1])).toEqual(Array.from(outputs[0]));
  });

  it("split along the context: long decode rows and short ones in one batch, 1, 7 and 16 partitions", async () => {
    const blocks = shuffled(96, 9);
    const seqs: Seq[] = [
      { position: 449, rows: 1, blockTable: blocks.slice(0, 29) }, // 450 positions
      { position: 298, rows: 2, blockTable: blocks.slice(29, 48) },
      { position: 36, rows: 1, blockTable: blocks.slice(48, 51) }, // most partitions empty
      { position: 0, rows: 1, blockTable: blocks.slice(51, 52) },
      { position: 310, rows: 1, blockTable: blocks.slice(52, 72) },
    ];
    for (const scoring of [{}, { scale: 0.7, softcap: 5, window: 100 }]) {
      const { expected } = await run(4, 2, 8, 16, 96, seqs, 60, scoring);
      for (const split of [
        { nParts: 1, partLen: 450 },
        { nParts: 7, partLen: 65 }, // the last partition partial
        { nParts: 16, partLen: 29 },
      ]) {
        const { got } = await run(4, 2, 8, 16, 96, seqs, 60, scoring, split);
        expectClose(got, expected, 1e-5, `${split.nParts} partitions, ${JSON.stringify(scoring)}`);
      }
    }
  });
});
