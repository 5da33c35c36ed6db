// Host side of each kernel: the parameter block it reads and the workgroup count it needs. The backend and the
// kernel tests both encode dispatches through these, so the tests cover the host arithmetic too.
import type { LinearTarget } from "../../model/config.ts";
import { cdiv, type Site, type StepEncoder } from "./kernels.ts";
import type { DeviceMatrix } from "./tensors.ts";

/** embed.wgsl over one chunk of the table; scale multiplies the gathered rows (default 1; Gemma: sqrt(dim)). */
export function embed(
  enc: StepEncoder,
  site: Site,
  a: { T: number; K4: number; rowStart: number; rowCount: number; scale?: number; sOff?: number },
): void {
  enc.dispatch(site, [a.T, a.K4, a.rowStart, a.rowCount, a.scale ?? 1, a.sOff ?? 0], [4], cdiv(a.K4, 64), a.T);
}

/** rmsnorm.wgsl; accumulate adds the normed rows to out instead of writing them (Gemma 2's post-norms). */
export function rmsnorm(
  enc: StepEncoder,
  site: Site,
  a: { R: number; dim: number; ldx: number; ldo: number; eps: number; gather: boolean; accumulate?: boolean },
): void {
  enc.dispatch(site, [a.R, a.dim, a.ldx, a.ldo, a.eps, a.gather ? 1 : 0, a.accumulate ? 1 : 0], [4], a.R);
}

/** head-rmsnorm.wgsl: every head of `heads` starting at column off of T rows, normed in place (Qwen3). */
export function headRmsnorm(
  enc: StepEncoder,
  site: Site,
  a: { T: number; ld: number; off: number; heads: number; headDim: number; eps: number },
): void {
  enc.dispatch(site, [a.T, a.ld, a.off, a.headDim, a.eps], [4], a.heads, a.T);
}

/** bias-add.wgsl: the first N columns of T rows of stride ld, plus the bias (Qwen2). */
export function biasAdd(enc: StepEncoder, site: Site, a: { T: number; N: number; ld: number }): void {
  enc.dispatch(site, [a.T, a.N, a.ld], [], cdiv(a.N, 64), a.T);
}

/** softcap.wgsl: the first N columns of R rows, cap x tanh(y / cap) in place (Gemma 2's final logits). */
export function softcap(enc: StepEncoder, site: Site, a: { R: number; N: number; ld: number; cap: number }): void {
  enc.dispatch(site, [a.R, a.N, a.ld, a.cap], [3], cdiv(a.N, 64), a.R);
}

export interface LinearArgs {
  M: number;
  N: number;
  K4: number;
  ldx4: number;
  ldy: number;
  yOff: number;
  accumulate: boolean;
  /** The chunk's scale region in words (MatrixChunk.sOff); 0 for formats without one. */
  sOff?: number;
}

function linearParams(a: LinearArgs): number[] {
  return [a.M, a.N, a.K4, a.ldx4, a.ldy, a.yOff, a.accumulate ? 1 : 0, a.sOff ?? 0];
}

/** matmul.wgsl: 4x4 blocks, any M. */
export function matmul(enc: StepEncoder, site: Site, a: LinearArgs): void {
  enc.dispatch(site, linearParams(a), [], cdiv(cdiv(a.N, 4), 64), cdiv(a.M, 4));
}

/** matmul-tiled.wgsl: 64 x 64 tiles staged in workgroup memory (GPUs), any M. */
export function matmulTiled(enc: StepEncoder, site: Site, a: LinearArgs): void {
  enc.dispatch(site, linearParams(a), [], cdiv(a.N, 64), cdiv(a.M, 64));
}

/** matvec.wgsl: M <= 4 rows, 4 outputs per invocation (the portable variant). */
export function matvec(enc: StepEncoder, site: Site, a: LinearArgs): void {
  if (a.M > 4) throw new RangeError(`matvec takes at most 4 rows, got ${a.M}`);
  enc.dispatch(site, linearParams(a), [], cdiv(cdiv(a.N, 4), 64));
}

/** matvec-splitk.wgsl: M <= 4 rows, split along K across a subgroup of at most maxSubgroup lanes. */
export function matvecSplitK(enc: StepEncoder, site: Site, a: LinearArgs, maxSubgroup: number): void {
  if (a.M > 4) throw new RangeError(`matvec takes at most 4 rows, got ${a.M}`);
  enc.dispatch(site, linearParams(a), [], splitKGroups(a.N, maxSubgroup));
}

/** Workgroups of the split-k kernels: a subgroup per 4 outputs, 64 / maxSubgroup subgroups a workgroup. */
function splitKGroups(N: number, maxSubgroup: number): number {
  return cdiv(cdiv(N, 4), Math.max(1, Math.floor(64 / maxSubgroup)));
}

/**
 * matvec-splitk-norm.wgsl over every row chunk of W: y[M, N] (+)= rmsnorm(x) · Wᵀ for M <= 4 rows, the normed rows
 * written to h as well. x (the residual stream) and h have the row stride ldx; normDim is the norm's width.
 */
export function linearNormed(
  enc: StepEncoder,
  sites: LinearSites,
  a: { M: number; ldx: number; ldy: number; normDim: number; eps: number; maxSubgroup: number },
): void {
  if (!sites.normed) throw new Error("linearNormed: the matrix has no fused norm sites");
  if (a.M > 4) throw new RangeError(`matvec takes at most 4 rows, got ${a.M}`);
  const { matrix } = sites;
  matrix.chunks.forEach((chunk, i) => {
    const args = chunkArgs(matrix, chunk, a, false);
    enc.dispatch(
      sites.normed![i],
      [...linearParams(args), a.normDim, a.eps],
      [9],
      splitKGroups(chunk.rows, a.maxSubgroup),
    );
  });
}

/** The linear kernels' arguments for one row chunk of a matrix, y[M, chunk rows] from x[M, K]. */
function chunkArgs(
  matrix: DeviceMatrix,
  chunk: DeviceMatrix["chunks"][number],
  a: { M: number; ldx: number; ldy: number },
  accumulate: boolean,
): LinearArgs {
  const { rows: N, rowStart: yOff, sOff } = chunk;
  return { M: a.M, N, K4: matrix.K4, ldx4: a.ldx / 4, ldy: a.ldy, yOff, accumulate, sOff };
}

/** Which kernel runs the projections of a pass of at most 4 rows (more rows always take matmul). */
export type MatvecKind = "portable" | "splitk" | "matmul";

/** Whether the norms before q|k|v and gate|up run inside the projection (matvec-splitk-norm.wgsl) or before it. */
export type NormKind = "fused" | "separate";

/**
 * The precision of matmul-tiled.wgsl's stages and per-stage sums: "f32", "f16" (shader-f16), or "by-weights" (f16
 * for matrices stored in f16, whose values are halves already; f32 for every other format).
 */
export type AccumulateKind = "f32" | "f16" | "by-weights";

/** Which kernel runs the projections of more rows: matmul.wgsl (register blocks) or matmul-tiled.wgsl. */
export type MatmulKind = "blocked" | "tiled";

/** A weight matrix's dispatch sites: one per row chunk, for matmul and (unless matmul does all) matvec. */
export interface LinearSites {
  matrix: DeviceMatrix;
  matmul: Site[];
  /** The matmul sites run matmul-tiled.wgsl (else matmul.wgsl). */
  tiled: boolean;
  matvec: Site[] | null;
  /**
   * matvec-splitk-norm.wgsl per row chunk, for a matrix whose input is an RMSNorm's output (h): the norm fused
   * into the projection, reading the residual stream; null where the norm runs as its own dispatch.
   */
  normed: Site[] | null;
}

/**
 * y[M, N] (+)= x[M, K] · Wᵀ over every row chunk of W: matmul for more than 4 rows, else the chosen matvec.
 * ldx and ldy are the row strides of x and y in floats (ldx a multiple of 4).
 */
export function linear(
  enc: StepEncoder,
  sites: LinearSites,
  a: { M: number; ldx: number; ldy: number; accumulate: boolean; kind: MatvecKind; maxSubgroup: number },
): void {
  const { matrix } = sites;
  matrix.chunks.forEach((chunk, i) => {
    const args = chunkArgs(matrix, chunk, a, a.accumulate);
    if (!sites.matvec || a.M > 4) (sites.tiled ? matmulTiled : matmul)(enc, sites.matmul[i], args);
    else if (a.kind === "splitk") matvecSplitK(enc, sites.matvec[i], args, a.maxSubgroup);
    else matvec(enc, sites.matvec[i], args);
  });
}

export function rope(enc: StepEncoder, site: Site, a: { T: number; ld: number; heads: number; headDim: number }): void {
  const half = a.headDim / 2;
  enc.dispatch(site, [a.T, a.ld, a.heads, half], [], cdiv(a.heads * half, 64), a.T);
}

export function kvStore(
  enc: StepEncoder,
  site: Site,
  a: { T: number; ld: number; kvDim: number; kOff: number; vOff: number },
): void {
  enc.dispatch(site, [a.T, a.ld, a.kvDim, a.kOff, a.vOff], [], cdiv(a.kvDim, 64), a.T);
}

export interface AttentionArgs {
  T: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  kvDim: number;
  ldq: number;
  ldo: number;
  blockSize: number;
  scale?: number;
  softcap?: number;
  window?: number;
}

function attentionParams(a: AttentionArgs, nParts: number, partLen: number): number[] {
  const scale = a.scale ?? 1 / Math.sqrt(a.headDim);
  return [
    a.T,
    a.nHeads,
    a.nHeads / a.nKvHeads,
    a.kvDim,
    a.ldq,
    a.ldo,
    a.blockSize,
    scale,
    a.softcap ?? 0,
    a.window ?? 0,
    nParts,
    partLen,
  ];
}

/**
 * attention.wgsl. scale defaults to 1/sqrt(headDim); softcap 0 and window 0 (the defaults) mean none
 * (Gemma 2 sets both; sliding-window layers set window).
 */
export function attention(enc: StepEncoder, site: Site, a: AttentionArgs): void {
  enc.dispatch(site, attentionParams(a, 0, 0), [7, 8], cdiv(a.T * a.nHeads, 64));
}

/**
 * Which attention kernels run: "auto" (flash-decoding where attentionSplitPlan's threshold says), "split" (for
 * every pass of few rows that spans two partitions, whatever the threshold) or "single" (never split).
 */
export type AttentionKind = "auto" | "split" | "single";

/**
 * The split's limits. A pass of at most maxRows rows whose longest context times the head dimension is minWork or
 * more (256 positions at head dimension 64, 2048 at 8) is split into up to maxParts partitions of at least
 * minPart positions. On lavapipe, decode rows: the split took 0.6x the time from 256 positions at head dimension 64
 * and broke even at 2048 positions at 8 (BENCHMARKS.md, "GPU (issue 16)"); on a GPU, unmeasured. More rows bring
 * enough (row, head) pairs to fill the device.
 */
export const ATTENTION_SPLIT = { minWork: 16384, maxRows: 16, maxParts: 16, minPart: 64 } as const;

/** Floats of the partials buffer attention-split.wgsl writes: [maxRows, nHeads, maxParts, headDim + 2]. */
export function attentionPartialsFloats(nHeads: number, headDim: number): number {
  return ATTENTION_SPLIT.maxRows * nHeads * ATTENTION_SPLIT.maxParts * (headDim + 2);
}

/**
 * The partitions of a pass of T rows whose longest context is maxContext positions; null: no split. With
 * `always`, minWork does not apply (the "split" kind: tests of the split on small models).
 */
export function attentionSplitPlan(
  T: number,
  maxContext: number,
  headDim: number,
  always = false,
): { nParts: number; partLen: number } | null {
  const { minWork, maxRows, maxParts, minPart } = ATTENTION_SPLIT;
  if (T > maxRows || maxContext < 2 * minPart || (!always && maxContext * headDim < minWork)) return null;
  const nParts = Math.min(maxParts, Math.floor(maxContext / minPart));
  return { nParts, partLen: Math.ceil(maxContext / nParts) };
}

/**
 * attention-split.wgsl into the partials, then attention-reduce.wgsl into the output: the same result as
 * attention() (another order of the float sums). nParts * partLen must cover the longest context; T at most
 * ATTENTION_SPLIT.maxRows and nParts at most ATTENTION_SPLIT.maxParts (the partials buffer's size).
 */
export function attentionSplit(
  enc: StepEncoder,
  sites: { split: Site; reduce: Site },
  a: AttentionArgs,
  plan: { nParts: number; partLen: number },
): void {
  if (a.T > ATTENTION_SPLIT.maxRows || plan.nParts > ATTENTION_SPLIT.maxParts || plan.nParts < 1) {
    throw new RangeError(`attention split of ${a.T} rows into ${plan.nParts} partitions exceeds its partials`);
  }
  const pairs = cdiv(a.T * a.nHeads, 64);
  enc.dispatch(sites.split, attentionParams(a, plan.nParts, plan.partLen), [7, 8], pairs, plan.nParts);
  enc.dispatch(sites.reduce, [a.T, a.nHeads, plan.nParts, a.ldo], [], pairs);
}

/** gated.wgsl: SwiGLU, or GeGLU (constant GELU = 1) for a GELU-tanh site. */
export function swiglu(
  enc: StepEncoder,
  site: Site,
  a: { T: number; hidden: number; ldIn: number; upOff: number; ldOut: number },
): void {
  enc.dispatch(site, [a.T, a.hidden, a.ldIn, a.upOff, a.ldOut], [], cdiv(a.hidden, 64), a.T);
}

/** The shapes of one LoRA target group (targets that share an input) in the slot pools. */
export interface LoraGroupShape {
  /** Number of targets in the group (1..3). */
  targets: number;
  /** Slot rank rounded up to 4. */
  rs: number;
  /** Input width padded to 4, in vec4s. */
  K4: number;
  /** Total output columns of the group. */
  N: number;
  /** Output column where the group's 2nd and 3rd targets begin (N when absent). */
  b1: number;
  b2: number;
  /** Index of the group's first target in LINEAR_TARGETS. */
  firstTarget: number;
}

/**
 * sgmv-shrink.wgsl (a workgroup per 64 (tile, column of v) pairs) or, with `segments`, sgmv-shrink-segment.wgsl (a
 * workgroup per (16 columns of v, segment)); the same parameters. rankStride = nLayers * 7, the row length of the
 * rank table.
 */
export function sgmvShrink(
  enc: StepEncoder,
  site: Site,
  g: LoraGroupShape,
  a: { nTiles: number; layer: number; ldx4: number; ldv: number; rankStride: number; segments: boolean },
): void {
  const J = g.targets * g.rs;
  const params = [a.nTiles, J, g.rs, g.K4, a.ldx4, a.ldv, a.layer * 7 + g.firstTarget, a.rankStride];
  if (a.segments) enc.dispatch(site, params, [], cdiv(J, 16), a.nTiles);
  else enc.dispatch(site, params, [], cdiv(a.nTiles * J, 64));
}

/** sgmv-expand.wgsl, or sgmv-expand-segment.wgsl (same parameters and workgroup count; RS4 fixed at its build). */
export function sgmvExpand(
  enc: StepEncoder,
  site: Site,
  g: LoraGroupShape,
  a: { nTiles: number; layer: number; ldv4: number; ldy: number; yOff: number; rankStride: number },
): void {
  enc.dispatch(
    site,
    [a.nTiles, g.N, g.rs / 4, a.ldv4, a.ldy, a.yOff, g.b1, g.b2, a.layer * 7 + g.firstTarget, a.rankStride],
    [],
    cdiv(g.N, 64),
    a.nTiles,
  );
}

/**
 * Which SGMV kernels run the LoRA deltas: "portable" (sgmv-shrink/expand.wgsl, A and B read once per 4 rows of a
 * segment, no workgroup memory) or "segments" (sgmv-shrink/expand-segment.wgsl, read once per segment).
 */
export type SgmvKind = "portable" | "segments";

/** One target group's LoRA pools and its two SGMV sites (shrink reads the group's input, expand adds to its output). */
export interface LoraGroup {
  shape: LoraGroupShape;
  targets: readonly LinearTarget[];
  a: GPUBuffer;
  b: GPUBuffer;
  shrink: Site;
  expand: Site;
  /** The sites run the segment kernels (sgmv-*-segment.wgsl), else the portable ones. */
  segments: boolean;
}

/**
 * SGMV for one target group over a pass's tiles: v = x · Aᵀ (shrink, rank rs per target), then y += v · Bᵀ
 * (expand). ldx and ldy are the row strides of the group's input and output; ldv that of v (a multiple of 4).
 */
export function sgmv(
  enc: StepEncoder,
  group: LoraGroup,
  a: { nTiles: number; layer: number; ldx: number; ldy: number; ldv: number; rankStride: number },
): void {
  sgmvShrink(enc, group.shrink, group.shape, {
    nTiles: a.nTiles,
    layer: a.layer,
    ldx4: a.ldx / 4,
    ldv: a.ldv,
    rankStride: a.rankStride,
    segments: group.segments,
  });
  sgmvExpand(enc, group.expand, group.shape, {
    nTiles: a.nTiles,
    layer: a.layer,
    ldv4: a.ldv / 4,
    ldy: a.ldy,
    yOff: 0,
    rankStride: a.rankStride,
  });
}

export function sample(enc: StepEncoder, site: Site, a: { S: number; vocab: number; ld: number }): void {
  enc.dispatch(site, [a.S, a.vocab, a.ld], [], a.S);
}

/** Rows of one SGMV tile at most: the segment kernels stage a whole tile's rows in workgroup memory. */
export const SEGMENT_ROWS = 16;

/**
 * The SGMV tile table of a step: rows are in processing order and rowSlots[r] is row r's adapter slot (-1 for
 * none). Consecutive rows of one slot that holds an adapter (a segment) form tiles of up to SEGMENT_ROWS rows:
 * (rowStart, count, slot, 0). Rows without adapter are in no tile.
 */
export function buildTiles(rowSlots: ArrayLike<number>, filled: (slot: number) => boolean): Uint32Array {
  const tiles: number[] = [];
  for (let r = 0; r < rowSlots.length;) {
    const slot = rowSlots[r];
    if (slot < 0 || !filled(slot)) {
      r++;
      continue;
    }
    let n = 1;
    while (n < SEGMENT_ROWS && r + n < rowSlots.length && rowSlots[r + n] === slot) n++;
    tiles.push(r, n, slot, 0);
    r += n;
  }
  return Uint32Array.from(tiles);
}

/** One LoRA pair as the packer needs it: A [rank, inDim], B [outDim, rank], both row-major. */
export interface PackPair {
  rank: number;
  a: Float32Array;
  b: Float32Array;
}

/**
 * One slot's region of a target group's A and B pools (see sgmv-shrink.wgsl / sgmv-expand.wgsl):
 * A [targets * rs, 4 * K4] with target t's rows at t * rs, B [N, rs] with target t's rows at its output offset.
 * Absent pairs (undefined) leave zeros.
 */
export function packLoraSlot(
  shape: LoraGroupShape,
  inDim: number,
  outDims: readonly number[],
  pairs: readonly (PackPair | undefined)[],
): { a: Float32Array; b: Float32Array } {
  const ld = shape.K4 * 4;
  const a = new Float32Array(shape.targets * shape.rs * ld);
  const b = new Float32Array(shape.N * shape.rs);
  let colOff = 0;
  outDims.forEach((outDim, t) => {
    const pair = pairs[t];
    if (pair) {
      if (pair.rank > shape.rs) throw new RangeError(`LoRA rank ${pair.rank} exceeds the slot rank ${shape.rs}`);
      for (let j = 0; j < pair.rank; j++) a.set(pair.a.subarray(j * inDim, (j + 1) * inDim), (t * shape.rs + j) * ld);
      for (let n = 0; n < outDim; n++)
        b.set(pair.b.subarray(n * pair.rank, (n + 1) * pair.rank), (colOff + n) * shape.rs);
    }
    colOff += outDim;
  });
  return { a, b };
}

/** The shape of a target group with these output widths (1 to 3 targets sharing an input of inDim). */
export function loraGroupShape(
  inDim: number,
  outDims: readonly number[],
  rs: number,
  firstTarget: number,
): LoraGroupShape {
  const N = outDims.reduce((s, d) => s + d, 0);
  return {
    targets: outDims.length,
    rs,
    K4: Math.ceil(inDim / 4),
    N,
    b1: outDims.length > 1 ? outDims[0] : N,
    b2: outDims.length > 2 ? outDims[0] + outDims[1] : N,
    firstTarget,
  };
}
