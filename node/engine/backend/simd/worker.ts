// One thread of the simd backend's pool. Every worker runs the whole forward pass over the shared memory and
// claims chunks of each phase from a shared counter: output columns of every projection (each chunk streams its
// slice of the weights once), (sequence, head, rows) units of attention, (sequence, target) LoRA shrinks.
// Which worker computes an element never changes its value (same kernel, same order). A phase that reads what
// another worker wrote first waits until every chunk of the phases before it is done (control.ts); a worker
// normalizes the rows it needs itself, when it claims its first chunk of a phase that reads them.
import { parentPort, workerData } from "node:worker_threads";
import { chunkDone, CTL, PassAbandoned, waitForChunks, wakeWord } from "./control.ts";
import { SEQ_FIELDS, SEQ_INTS, SLOT_INTS, type PlacedMatrix, type SimdLayout } from "./layout.ts";

interface Kernels {
  linear(
    dtype: number,
    out: number,
    ldo: number,
    x: number,
    ldx: number,
    rows: number,
    w: number,
    n: number,
    j0: number,
    j1: number,
    accumulate: number,
    panel: number,
  ): void;
  rmsnorm(out: number, x: number, ld: number, weight: number, rows: number, dim: number, eps: number): void;
  rope(
    x: number,
    ld: number,
    rows: number,
    positions: number,
    base: number,
    c0: number,
    c1: number,
    headDim: number,
    table: number,
  ): void;
  attend(
    out: number,
    q: number,
    kBase: number,
    vBase: number,
    table: number,
    blockSize: number,
    kvDim: number,
    kvOffset: number,
    length: number,
    headDim: number,
    scale: number,
    scores: number,
  ): void;
  swiglu(out: number, gate: number, up: number, ld: number, rows: number, c0: number, c1: number): void;
  copy(dst: number, src: number, n: number): void;
}

export interface WorkerInput {
  /** The compiled kernels (a Module crosses to workers without recompiling). */
  kernels: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer;
  /** One claim counter per phase of a pass (zeroed by the main thread before each pass). */
  tickets: SharedArrayBuffer;
  layout: SimdLayout;
  index: number;
}

/** Target indices in the slot table (LINEAR_TARGETS order) and their column in the LoRA scratch. */
const T_Q = 0,
  T_K = 1,
  T_V = 2,
  T_O = 3,
  T_GATE = 4,
  T_UP = 5,
  T_DOWN = 6;
/** Attention units cover at most this many rows of one sequence and head. */
const ATTENTION_ROWS = 16;

const input = workerData as WorkerInput;
const { layout, index: me } = input;
const ctl = new Int32Array(input.control);
const tickets = new Int32Array(input.tickets);
const instance = new WebAssembly.Instance(input.kernels, {
  env: {
    memory: input.memory,
    abort: () => {
      throw new Error("kernel abort");
    },
  },
});
const k = instance.exports as unknown as Kernels;
const i32 = new Int32Array(input.memory.buffer);

const { config } = layout;
const { dim, hiddenDim: hidden, nHeads, nKvHeads, headDim, vocabSize } = config;
const kvDim = nKvHeads * headDim;
const qkvN = dim + 2 * kvDim;
const guN = 2 * hidden;
const loraLd = 3 * Math.max(1, layout.maxRank);
const panel = layout.scratch + me * layout.scratchStride;
const xn = layout.xn + me * layout.maxRows * dim * 4;
const scores = panel + 4 * Math.max(dim, hidden) * 4;
const scale = 1 / Math.sqrt(headDim);
const group = nHeads / nKvHeads;

function seqField(s: number, field: number): number {
  return i32[(layout.seqs >> 2) + s * SEQ_INTS + field];
}

/** rank, A and B of a slot's pair for (layer, target); rank 0 when the adapter does not touch it. */
function pairOf(slot: number, layer: number, target: number): [number, number, number] {
  const at = (layout.slotTable >> 2) + ((slot * config.nLayers + layer) * 7 + target) * SLOT_INTS;
  return [i32[at], i32[at + 1], i32[at + 2]];
}

/** out[:, cols of this matrix inside [c0, c1)] of a projection whose output starts at column `base` of out. */
function project(
  m: PlacedMatrix,
  out: number,
  ldo: number,
  base: number,
  x: number,
  ldx: number,
  rows: number,
  c0: number,
  c1: number,
  accumulate: boolean,
): void {
  const j0 = Math.max(c0, base) - base;
  const j1 = Math.min(c1, base + m.rows) - base;
  if (j0 < j1) k.linear(m.code, out + 4 * base, ldo, x, ldx, rows, m.offset, m.cols, j0, j1, accumulate ? 1 : 0, panel);
}

/**
 * LoRA shrink v = x A^T over (sequence, target) tasks claimed like chunks; the targets share input x, which
 * `prepare` computes into this worker's scratch when x is its normed rows.
 */
function shrink(
  layer: number,
  targets: readonly number[],
  x: number,
  ldx: number,
  inDim: number,
  nSeqs: number,
  prepare: (() => void) | null,
): void {
  chunks(nSeqs * targets.length, 1, (task) => {
    const s = Math.floor(task / targets.length);
    const t = task % targets.length;
    const slot = seqField(s, SEQ_FIELDS.slot);
    if (slot < 0) return;
    const [rank, a] = pairOf(slot, layer, targets[t]);
    if (rank === 0) return;
    prepare?.();
    const start = seqField(s, SEQ_FIELDS.start);
    const v = layout.lora + 4 * (start * loraLd + t * layout.maxRank);
    k.linear(0, v, loraLd, x + 4 * start * ldx, ldx, seqField(s, SEQ_FIELDS.rows), a, inDim, 0, rank, 0, panel);
  });
}

/** LoRA expand out += v B^T over this worker's columns [c0, c1) of target t (output column `base` of out). */
function expand(
  layer: number,
  targets: readonly number[],
  t: number,
  out: number,
  ldo: number,
  base: number,
  outDim: number,
  c0: number,
  c1: number,
  nSeqs: number,
): void {
  const j0 = Math.max(c0, base) - base;
  const j1 = Math.min(c1, base + outDim) - base;
  if (j0 >= j1) return;
  for (let s = 0; s < nSeqs; s++) {
    const slot = seqField(s, SEQ_FIELDS.slot);
    if (slot < 0) continue;
    const [rank, , b] = pairOf(slot, layer, targets[t]);
    if (rank === 0) continue;
    const start = seqField(s, SEQ_FIELDS.start);
    const v = layout.lora + 4 * (start * loraLd + t * layout.maxRank);
    k.linear(
      0,
      out + 4 * (start * ldo + base),
      ldo,
      v,
      loraLd,
      seqField(s, SEQ_FIELDS.rows),
      b,
      rank,
      j0,
      j1,
      1,
      panel,
    );
  }
}

/** Columns per claimed chunk of a projection: small enough to rebalance, large enough to stream. */
const COLUMN_GRAIN = 64;

/** Phases started in this pass (each has its claim counter), and the chunks of all of them. */
let phase = 0;
let expected = 0;

/**
 * Runs fn over [0, n) in chunks of `grain` that the workers claim from a shared counter, one counter per phase
 * of the pass: a worker the OS deschedules holds up no fixed share, the others take its chunks. Every worker
 * calls the same phases in the same order, so they agree on the counters and on the chunk totals.
 */
function chunks(n: number, grain: number, fn: (lo: number, hi: number) => void): void {
  const slot = phase++;
  const total = Math.ceil(n / grain);
  expected += total;
  for (;;) {
    const chunk = Atomics.add(tickets, slot, 1);
    if (chunk >= total) return;
    fn(chunk * grain, Math.min(n, (chunk + 1) * grain));
    chunkDone(ctl);
  }
}

/** Waits until every chunk of the phases so far is done (by whichever worker). */
function sync(): void {
  waitForChunks(ctl, expected);
}

function forwardPass(): void {
  phase = 0;
  expected = 0;
  const header = layout.step >> 2;
  const nRows = i32[header];
  const nSeqs = i32[header + 1];
  const lora = i32[header + 2] !== 0;
  const eps = config.normEps;
  const QKV = [T_Q, T_K, T_V];
  const O = [T_O];
  const GU = [T_GATE, T_UP];
  const DOWN = [T_DOWN];
  // Which norm this worker's xn holds: a worker that claims no chunk of a phase never computes its norm.
  let normed = -1;
  const norm = (key: number, weight: number): void => {
    if (normed === key) return;
    k.rmsnorm(xn, layout.x, dim, weight, nRows, dim, eps);
    normed = key;
  };
  const ropeAndStore = (l: number, c0: number, c1: number): void => {
    if (c0 < Math.min(c1, dim))
      k.rope(layout.qkv, qkvN, nRows, layout.positions, 0, c0, Math.min(c1, dim), headDim, layout.ropeTable);
    const k0 = Math.max(c0, dim);
    const k1 = Math.min(c1, dim + kvDim);
    if (k0 < k1) k.rope(layout.qkv, qkvN, nRows, layout.positions, dim, k0, k1, headDim, layout.ropeTable);
    storeKv(l, nRows, c0, c1);
  };
  for (let l = 0; l < config.nLayers; l++) {
    const w = layout.layers[l];
    const attnNorm = (): void => norm(2 * l, w.attnNorm);
    const ffnNorm = (): void => norm(2 * l + 1, w.ffnNorm);
    // Attention block: norm, q|k|v projections (+LoRA), RoPE, K/V into the pool.
    chunks(qkvN, COLUMN_GRAIN, (c0, c1) => {
      attnNorm();
      project(w.wq, layout.qkv, qkvN, 0, xn, dim, nRows, c0, c1, false);
      project(w.wk, layout.qkv, qkvN, dim, xn, dim, nRows, c0, c1, false);
      project(w.wv, layout.qkv, qkvN, dim + kvDim, xn, dim, nRows, c0, c1, false);
      if (!lora) ropeAndStore(l, c0, c1);
    });
    if (lora) {
      shrink(l, QKV, xn, dim, dim, nSeqs, attnNorm);
      sync();
      chunks(qkvN, COLUMN_GRAIN, (c0, c1) => {
        expand(l, QKV, 0, layout.qkv, qkvN, 0, dim, c0, c1, nSeqs);
        expand(l, QKV, 1, layout.qkv, qkvN, dim, kvDim, c0, c1, nSeqs);
        expand(l, QKV, 2, layout.qkv, qkvN, dim + kvDim, kvDim, c0, c1, nSeqs);
        ropeAndStore(l, c0, c1);
      });
    }
    sync();
    attention(l, nSeqs);
    sync();
    // Output projection straight into the residual stream (+LoRA).
    chunks(dim, COLUMN_GRAIN, (d0, d1) => project(w.wo, layout.x, dim, 0, layout.att, dim, nRows, d0, d1, true));
    if (lora) {
      shrink(l, O, layout.att, dim, dim, nSeqs, null);
      sync();
      chunks(dim, COLUMN_GRAIN, (d0, d1) => expand(l, O, 0, layout.x, dim, 0, dim, d0, d1, nSeqs));
    }
    sync();
    // MLP: norm, gate|up (+LoRA), SwiGLU in place of gate, down into the residual (+LoRA).
    const swiglu = (h0: number, h1: number): void =>
      k.swiglu(layout.gu, layout.gu, layout.gu + 4 * hidden, guN, nRows, h0, h1);
    chunks(hidden, COLUMN_GRAIN, (h0, h1) => {
      ffnNorm();
      project(w.wGate, layout.gu, guN, 0, xn, dim, nRows, h0, h1, false);
      project(w.wUp, layout.gu, guN, hidden, xn, dim, nRows, hidden + h0, hidden + h1, false);
      if (!lora) swiglu(h0, h1);
    });
    if (lora) {
      shrink(l, GU, xn, dim, dim, nSeqs, ffnNorm);
      sync();
      chunks(hidden, COLUMN_GRAIN, (h0, h1) => {
        expand(l, GU, 0, layout.gu, guN, 0, hidden, h0, h1, nSeqs);
        expand(l, GU, 1, layout.gu, guN, hidden, hidden, hidden + h0, hidden + h1, nSeqs);
        swiglu(h0, h1);
      });
    }
    sync();
    chunks(dim, COLUMN_GRAIN, (d0, d1) => project(w.wDown, layout.x, dim, 0, layout.gu, guN, nRows, d0, d1, true));
    if (lora) {
      shrink(l, DOWN, layout.gu, guN, hidden, nSeqs, null);
      sync();
      chunks(dim, COLUMN_GRAIN, (d0, d1) => expand(l, DOWN, 0, layout.x, dim, 0, dim, d0, d1, nSeqs));
    }
    sync();
  }
  // Logits of each sequence's last row, normed by each worker into its xn at its first classifier chunk.
  let lastNormed = false;
  chunks(vocabSize, 4 * COLUMN_GRAIN, (v0, v1) => {
    if (!lastNormed) {
      for (let s = 0; s < nSeqs; s++) {
        const row = seqField(s, SEQ_FIELDS.last);
        k.rmsnorm(xn + 4 * s * dim, layout.x + 4 * row * dim, dim, layout.finalNorm, 1, dim, eps);
      }
      lastNormed = true;
    }
    project(layout.classifier, layout.logits, vocabSize, 0, xn, dim, nSeqs, v0, v1, false);
  });
  sync();
}

/** Copies this worker's K and V columns of every row into the row's place in the paged pool. */
function storeKv(layer: number, nRows: number, c0: number, c1: number): void {
  const kvCols: [number, number][] = [
    [layout.kCache, dim],
    [layout.vCache, dim + kvDim],
  ];
  for (const [pool, base] of kvCols) {
    const a = Math.max(c0, base);
    const b = Math.min(c1, base + kvDim);
    if (a >= b) continue;
    for (let r = 0; r < nRows; r++) {
      const row = i32[(layout.cacheRows >> 2) + r];
      k.copy(
        pool + layer * layout.layerStride + 4 * (row * kvDim + a - base),
        layout.qkv + 4 * (r * qkvN + a),
        4 * (b - a),
      );
    }
  }
}

/** Units (sequence, head, up to ATTENTION_ROWS rows), claimed like chunks. */
function attention(layer: number, nSeqs: number): void {
  const kBase = layout.kCache + layer * layout.layerStride;
  const vBase = layout.vCache + layer * layout.layerStride;
  const units: number[] = []; // (sequence, first row) pairs; each unit covers every head of its rows
  for (let s = 0; s < nSeqs; s++) {
    for (let first = 0; first < seqField(s, SEQ_FIELDS.rows); first += ATTENTION_ROWS) units.push(s, first);
  }
  chunks((units.length / 2) * nHeads, 1, (u) => {
    const h = u % nHeads;
    const s = units[2 * Math.floor(u / nHeads)];
    const first = units[2 * Math.floor(u / nHeads) + 1];
    const start = seqField(s, SEQ_FIELDS.start);
    const rows = seqField(s, SEQ_FIELDS.rows);
    const position = seqField(s, SEQ_FIELDS.position);
    const table = layout.tables + 4 * seqField(s, SEQ_FIELDS.table);
    const kvOffset = Math.floor(h / group) * headDim;
    for (let r = first; r < Math.min(rows, first + ATTENTION_ROWS); r++) {
      const row = start + r;
      k.attend(
        layout.att + 4 * (row * dim + h * headDim),
        layout.qkv + 4 * (row * qkvN + h * headDim),
        kBase,
        vBase,
        table,
        layout.blockSize,
        kvDim,
        kvOffset,
        position + r + 1,
        headDim,
        scale,
        scores,
      );
    }
  });
}

parentPort!.postMessage({ ready: true });
const wake = wakeWord(me);
let generation = 0;
for (;;) {
  Atomics.wait(ctl, wake, generation);
  generation = Atomics.load(ctl, wake);
  if (Atomics.load(ctl, CTL.stop) !== 0) break;
  try {
    forwardPass();
    // Every chunk of the pass is done (sync waited for all): the first worker here releases the main thread.
    if (Atomics.exchange(ctl, CTL.complete, generation) !== generation) Atomics.notify(ctl, CTL.complete);
  } catch (error) {
    Atomics.store(ctl, CTL.failed, 1);
    Atomics.notify(ctl, CTL.done);
    Atomics.notify(ctl, CTL.complete);
    if (!(error instanceof PassAbandoned)) parentPort!.postMessage({ error: String((error as Error)?.stack ?? error) });
  }
  Atomics.add(ctl, CTL.finished, 1);
  Atomics.notify(ctl, CTL.finished);
}
