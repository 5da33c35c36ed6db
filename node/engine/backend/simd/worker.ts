// One thread of the simd backend's pool. Every worker runs the whole forward pass over the shared memory and
// does its share of each phase: output columns of every projection (each worker streams its own slice of the
// weights), rows of the norms, (sequence, head, rows) units of attention, (sequence, target) LoRA shrinks.
// Barriers separate phases that read what another worker wrote.
import { parentPort, workerData } from "node:worker_threads";
import { barrier, CTL, PassAbandoned } from "./control.ts";
import { SEQ_FIELDS, SEQ_INTS, SLOT_INTS, type PlacedMatrix, type SimdLayout } from "./layout.ts";

interface Kernels {
  linear(dtype: number, out: number, ldo: number, x: number, ldx: number, rows: number, w: number, n: number, j0: number, j1: number, accumulate: number, panel: number): void;
  rmsnorm(out: number, x: number, ld: number, weight: number, rows: number, dim: number, eps: number): void;
  rope(x: number, ld: number, rows: number, positions: number, base: number, c0: number, c1: number, headDim: number, table: number): void;
  attend(out: number, q: number, kBase: number, vBase: number, table: number, blockSize: number, kvDim: number, kvOffset: number, length: number, headDim: number, scale: number, scores: number): void;
  swiglu(out: number, gate: number, up: number, ld: number, rows: number, c0: number, c1: number): void;
  copy(dst: number, src: number, n: number): void;
}

export interface WorkerInput {
  /** The compiled kernels (a Module crosses to workers without recompiling). */
  kernels: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer;
  layout: SimdLayout;
  index: number;
}

/** Target indices in the slot table (LINEAR_TARGETS order) and their column in the LoRA scratch. */
const T_Q = 0, T_K = 1, T_V = 2, T_O = 3, T_GATE = 4, T_UP = 5, T_DOWN = 6;
/** Attention units cover at most this many rows of one sequence and head. */
const ATTENTION_ROWS = 16;

const input = workerData as WorkerInput;
const { layout, index: me } = input;
const ctl = new Int32Array(input.control);
const instance = new WebAssembly.Instance(input.kernels, { env: { memory: input.memory, abort: () => { throw new Error("kernel abort"); } } });
const k = instance.exports as unknown as Kernels;
const i32 = new Int32Array(input.memory.buffer);

const { config, threads: T } = layout;
const { dim, hiddenDim: hidden, nHeads, nKvHeads, headDim, vocabSize } = config;
const kvDim = nKvHeads * headDim;
const qkvN = dim + 2 * kvDim;
const guN = 2 * hidden;
const loraLd = 3 * Math.max(1, layout.maxRank);
const panel = layout.scratch + me * layout.scratchStride;
const scores = panel + 4 * Math.max(dim, hidden) * 4;
const scale = 1 / Math.sqrt(headDim);
const group = nHeads / nKvHeads;

/** This worker's share [lo, hi) of n items, in multiples of `align`. */
function share(n: number, align: number): [number, number] {
  const per = Math.ceil(n / T / align) * align;
  return [Math.min(n, me * per), Math.min(n, (me + 1) * per)];
}

function seqField(s: number, field: number): number {
  return i32[(layout.seqs >> 2) + s * SEQ_INTS + field];
}

/** rank, A and B of a slot's pair for (layer, target); rank 0 when the adapter does not touch it. */
function pairOf(slot: number, layer: number, target: number): [number, number, number] {
  const at = (layout.slotTable >> 2) + ((slot * config.nLayers + layer) * 7 + target) * SLOT_INTS;
  return [i32[at], i32[at + 1], i32[at + 2]];
}

/** out[:, cols of this matrix inside [c0, c1)] of a projection whose output starts at column `base` of out. */
function project(m: PlacedMatrix, out: number, ldo: number, base: number, x: number, ldx: number, rows: number, c0: number, c1: number, accumulate: boolean): void {
  const j0 = Math.max(c0, base) - base;
  const j1 = Math.min(c1, base + m.rows) - base;
  if (j0 < j1) k.linear(m.code, out + 4 * base, ldo, x, ldx, rows, m.offset, m.cols, j0, j1, accumulate ? 1 : 0, panel);
}

/** LoRA shrink v = x A^T for (sequence, target) tasks of this worker; the targets share input x. */
function shrink(layer: number, targets: readonly number[], x: number, ldx: number, inDim: number, nSeqs: number): void {
  let task = 0;
  for (let s = 0; s < nSeqs; s++) {
    const slot = seqField(s, SEQ_FIELDS.slot);
    for (let t = 0; t < targets.length; t++, task++) {
      if (slot < 0 || task % T !== me) continue;
      const [rank, a] = pairOf(slot, layer, targets[t]);
      if (rank === 0) continue;
      const start = seqField(s, SEQ_FIELDS.start);
      const v = layout.lora + 4 * (start * loraLd + t * layout.maxRank);
      k.linear(0, v, loraLd, x + 4 * start * ldx, ldx, seqField(s, SEQ_FIELDS.rows), a, inDim, 0, rank, 0, panel);
    }
  }
}

/** LoRA expand out += v B^T over this worker's columns [c0, c1) of target t (output column `base` of out). */
function expand(layer: number, targets: readonly number[], t: number, out: number, ldo: number, base: number, outDim: number, c0: number, c1: number, nSeqs: number): void {
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
    k.linear(0, out + 4 * (start * ldo + base), ldo, v, loraLd, seqField(s, SEQ_FIELDS.rows), b, rank, j0, j1, 1, panel);
  }
}

function forwardPass(): void {
  const header = layout.step >> 2;
  const nRows = i32[header];
  const nSeqs = i32[header + 1];
  const lora = i32[header + 2] !== 0;
  const [r0, r1] = share(nRows, 1);
  const eps = config.normEps;
  const QKV = [T_Q, T_K, T_V];
  const O = [T_O];
  const GU = [T_GATE, T_UP];
  const DOWN = [T_DOWN];
  for (let l = 0; l < config.nLayers; l++) {
    const w = layout.layers[l];
    // Attention block: norm, q|k|v projections (+LoRA), RoPE, K/V into the pool.
    if (r0 < r1) k.rmsnorm(layout.xn + 4 * r0 * dim, layout.x + 4 * r0 * dim, dim, w.attnNorm, r1 - r0, dim, eps);
    barrier(ctl, T);
    const [c0, c1] = share(qkvN, 4);
    project(w.wq, layout.qkv, qkvN, 0, layout.xn, dim, nRows, c0, c1, false);
    project(w.wk, layout.qkv, qkvN, dim, layout.xn, dim, nRows, c0, c1, false);
    project(w.wv, layout.qkv, qkvN, dim + kvDim, layout.xn, dim, nRows, c0, c1, false);
    if (lora) {
      shrink(l, QKV, layout.xn, dim, dim, nSeqs);
      barrier(ctl, T);
      expand(l, QKV, 0, layout.qkv, qkvN, 0, dim, c0, c1, nSeqs);
      expand(l, QKV, 1, layout.qkv, qkvN, dim, kvDim, c0, c1, nSeqs);
      expand(l, QKV, 2, layout.qkv, qkvN, dim + kvDim, kvDim, c0, c1, nSeqs);
    }
    if (c0 < Math.min(c1, dim)) k.rope(layout.qkv, qkvN, nRows, layout.positions, 0, c0, Math.min(c1, dim), headDim, layout.ropeTable);
    const k0 = Math.max(c0, dim);
    const k1 = Math.min(c1, dim + kvDim);
    if (k0 < k1) k.rope(layout.qkv, qkvN, nRows, layout.positions, dim, k0, k1, headDim, layout.ropeTable);
    storeKv(l, nRows, c0, c1);
    barrier(ctl, T);
    attention(l, nSeqs);
    barrier(ctl, T);
    // Output projection straight into the residual stream (+LoRA).
    const [d0, d1] = share(dim, 4);
    project(w.wo, layout.x, dim, 0, layout.att, dim, nRows, d0, d1, true);
    if (lora) {
      shrink(l, O, layout.att, dim, dim, nSeqs);
      barrier(ctl, T);
      expand(l, O, 0, layout.x, dim, 0, dim, d0, d1, nSeqs);
    }
    barrier(ctl, T);
    // MLP: norm, gate|up (+LoRA), SwiGLU in place of gate, down into the residual (+LoRA).
    if (r0 < r1) k.rmsnorm(layout.xn + 4 * r0 * dim, layout.x + 4 * r0 * dim, dim, w.ffnNorm, r1 - r0, dim, eps);
    barrier(ctl, T);
    const [h0, h1] = share(hidden, 4);
    project(w.wGate, layout.gu, guN, 0, layout.xn, dim, nRows, h0, h1, false);
    project(w.wUp, layout.gu, guN, hidden, layout.xn, dim, nRows, hidden + h0, hidden + h1, false);
    if (lora) {
      shrink(l, GU, layout.xn, dim, dim, nSeqs);
      barrier(ctl, T);
      expand(l, GU, 0, layout.gu, guN, 0, hidden, h0, h1, nSeqs);
      expand(l, GU, 1, layout.gu, guN, hidden, hidden, hidden + h0, hidden + h1, nSeqs);
    }
    if (h0 < h1) k.swiglu(layout.gu, layout.gu, layout.gu + 4 * hidden, guN, nRows, h0, h1);
    barrier(ctl, T);
    project(w.wDown, layout.x, dim, 0, layout.gu, guN, nRows, d0, d1, true);
    if (lora) {
      shrink(l, DOWN, layout.gu, guN, hidden, nSeqs);
      barrier(ctl, T);
      expand(l, DOWN, 0, layout.x, dim, 0, dim, d0, d1, nSeqs);
    }
    barrier(ctl, T);
  }
  // Logits of each sequence's last row.
  const [s0, s1] = share(nSeqs, 1);
  for (let s = s0; s < s1; s++) {
    const row = seqField(s, SEQ_FIELDS.last);
    k.rmsnorm(layout.last + 4 * s * dim, layout.x + 4 * row * dim, dim, layout.finalNorm, 1, dim, config.normEps);
  }
  barrier(ctl, T);
  const [v0, v1] = share(vocabSize, 4);
  project(layout.classifier, layout.logits, vocabSize, 0, layout.last, dim, nSeqs, v0, v1, false);
}

/** Copies this worker's K and V columns of every row into the row's place in the paged pool. */
function storeKv(layer: number, nRows: number, c0: number, c1: number): void {
  const kvCols: [number, number][] = [[layout.kCache, dim], [layout.vCache, dim + kvDim]];
  for (const [pool, base] of kvCols) {
    const a = Math.max(c0, base);
    const b = Math.min(c1, base + kvDim);
    if (a >= b) continue;
    for (let r = 0; r < nRows; r++) {
      const row = i32[(layout.cacheRows >> 2) + r];
      k.copy(pool + layer * layout.layerStride + 4 * (row * kvDim + a - base), layout.qkv + 4 * (r * qkvN + a), 4 * (b - a));
    }
  }
}

/** Units (sequence, head, up to ATTENTION_ROWS rows) dealt round robin. */
function attention(layer: number, nSeqs: number): void {
  let unit = 0;
  const kBase = layout.kCache + layer * layout.layerStride;
  const vBase = layout.vCache + layer * layout.layerStride;
  for (let s = 0; s < nSeqs; s++) {
    const start = seqField(s, SEQ_FIELDS.start);
    const rows = seqField(s, SEQ_FIELDS.rows);
    const position = seqField(s, SEQ_FIELDS.position);
    const table = layout.tables + 4 * seqField(s, SEQ_FIELDS.table);
    for (let h = 0; h < nHeads; h++) {
      const kvOffset = Math.floor(h / group) * headDim;
      for (let first = 0; first < rows; first += ATTENTION_ROWS, unit++) {
        if (unit % T !== me) continue;
        for (let r = first; r < Math.min(rows, first + ATTENTION_ROWS); r++) {
          const row = start + r;
          k.attend(
            layout.att + 4 * (row * dim + h * headDim), layout.qkv + 4 * (row * qkvN + h * headDim), kBase, vBase, table,
            layout.blockSize, kvDim, kvOffset, position + r + 1, headDim, scale, scores,
          );
        }
      }
    }
  }
}

parentPort!.postMessage({ ready: true });
let generation = 0;
for (;;) {
  Atomics.wait(ctl, CTL.go, generation);
  generation = Atomics.load(ctl, CTL.go);
  if (Atomics.load(ctl, CTL.stop) !== 0) break;
  try {
    forwardPass();
  } catch (error) {
    Atomics.store(ctl, CTL.failed, 1);
    Atomics.notify(ctl, CTL.barrier);
    if (!(error instanceof PassAbandoned)) parentPort!.postMessage({ error: String((error as Error)?.stack ?? error) });
  }
  if (Atomics.add(ctl, CTL.done, 1) === T - 1) Atomics.notify(ctl, CTL.done);
}
