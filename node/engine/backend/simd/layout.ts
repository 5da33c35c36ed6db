// Where everything of the simd backend lives in its one shared WebAssembly memory: weights in the file's
// precision, the paged KV pool, adapter slots, a step's activations and its descriptor, per-thread scratch.
// The main thread computes it once; every worker gets the same object, so all agree on every address.
import { LINEAR_TARGETS, projectionShape } from "../../model/config.ts";
import type { ModelConfig } from "../../model/config.ts";
import type { WeightDType, WeightMatrix } from "../../model/weights.ts";
import type { BackendOptions } from "../backend.ts";

/** dtype codes of kernels/cpu/simd.ts. */
export const DTYPE_CODE: Readonly<Partial<Record<WeightDType, number>>> = { f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4 };

/** The kernels' code of a matrix's format; the K-quants (q4_k, q6_k) are refused by name. */
function dtypeCode(dtype: WeightDType): number {
  const code = DTYPE_CODE[dtype];
  if (code === undefined)
    throw new RangeError(`simd: ${dtype} weights are not supported (f32, f16, bf16, q8_0, q4_0); use --backend webgpu`);
  return code;
}

/** A matrix placed in memory. */
export interface PlacedMatrix {
  dtype: WeightDType;
  code: number;
  rows: number;
  cols: number;
  offset: number;
  bytes: number;
}

export interface PlacedLayer {
  attnNorm: number;
  ffnNorm: number;
  wq: PlacedMatrix;
  wk: PlacedMatrix;
  wv: PlacedMatrix;
  wo: PlacedMatrix;
  wGate: PlacedMatrix;
  wUp: PlacedMatrix;
  wDown: PlacedMatrix;
}

/** Per sequence, the descriptor holds these i32 fields. */
export const SEQ_FIELDS = { start: 0, rows: 1, slot: 2, position: 3, table: 4, last: 5 } as const;
export const SEQ_INTS = 8;
/** Per (slot, layer, target), the slot table holds rank, A's address, B's address. */
export const SLOT_INTS = 3;

export interface SimdLayout {
  config: ModelConfig;
  threads: number;
  /** Rows and sequences one pass holds; longer steps run as several passes. */
  maxRows: number;
  maxSeqs: number;
  blocksPerSeq: number;
  numBlocks: number;
  blockSize: number;
  adapterSlots: number;
  maxRank: number;
  /** Total bytes (a whole number of 64 KiB pages). */
  bytes: number;
  weightBytes: number;
  embedding: PlacedMatrix;
  classifier: PlacedMatrix;
  finalNorm: number;
  layers: PlacedLayer[];
  /** K and V pools [layers, numBlocks * blockSize, kvDim] f32, layerStride bytes per layer. */
  kCache: number;
  vCache: number;
  layerStride: number;
  /** cos, sin pairs [maxSeqLen, headDim / 2]. */
  ropeTable: number;
  /**
   * Activations, f32, maxRows rows each: x, att [dim]; qkv [dim + 2 kvDim]; gu [2 hidden]; lora [3 maxRank];
   * xn [dim] once per thread (each worker normalizes the rows it reads itself: no wait between a norm and its
   * matmul; before the classifier, the last row of each sequence).
   */
  x: number;
  xn: number;
  att: number;
  qkv: number;
  gu: number;
  lora: number;
  /** Logits of each sequence's last row [maxSeqs, vocab]. */
  logits: number;
  /** Step descriptor (i32): header [nRows, nSeqs, anyLora], positions[maxRows], cacheRows[maxRows], seqs, tables. */
  step: number;
  positions: number;
  cacheRows: number;
  seqs: number;
  tables: number;
  /** [slots, layers, 7 targets, SLOT_INTS] i32, then each slot's A and B storage. */
  slotTable: number;
  slotPool: number;
  slotBytes: number;
  /** Per thread: a dequantized panel of 4 rows, then attention scores (padded to 4); scratchStride bytes each. */
  scratch: number;
  scratchStride: number;
}

const PAGE = 65536;
/** The kernels' own stack and data live below this (they use none today; the margin keeps it so). */
const RESERVED = 65536;

/** A bump allocator of 64-byte aligned regions. */
class Arena {
  at = RESERVED;
  take(bytes: number): number {
    const offset = this.at;
    this.at = Math.ceil((offset + bytes) / 64) * 64;
    return offset;
  }
}

export interface LayoutInput {
  config: ModelConfig;
  options: BackendOptions;
  threads: number;
  maxRows: number;
  maxSeqs: number;
  embedding: WeightMatrix;
  classifier: WeightMatrix;
  layers: readonly Record<"wq" | "wk" | "wv" | "wo" | "wGate" | "wUp" | "wDown", WeightMatrix>[];
}

/** Lays the memory out; throws a RangeError naming the need when it exceeds wasm32's 4 GiB. */
export function planLayout(input: LayoutInput): SimdLayout {
  const { config, options, threads, maxRows, maxSeqs } = input;
  const { dim, hiddenDim, nLayers, headDim, vocabSize, maxSeqLen } = config;
  const kvDim = config.nKvHeads * headDim;
  const arena = new Arena();
  const place = (m: WeightMatrix): PlacedMatrix => ({
    dtype: m.dtype,
    code: dtypeCode(m.dtype),
    rows: m.rows,
    cols: m.cols,
    offset: arena.take(m.data.length),
    bytes: m.data.length,
  });
  const embedding = place(input.embedding);
  const classifier = input.classifier === input.embedding ? embedding : place(input.classifier);
  const finalNorm = arena.take(4 * dim);
  const layers = input.layers.map((l): PlacedLayer => ({
    attnNorm: arena.take(4 * dim),
    ffnNorm: arena.take(4 * dim),
    wq: place(l.wq),
    wk: place(l.wk),
    wv: place(l.wv),
    wo: place(l.wo),
    wGate: place(l.wGate),
    wUp: place(l.wUp),
    wDown: place(l.wDown),
  }));
  const weightBytes = arena.at - RESERVED;
  const positionsPerLayer = options.numBlocks * options.blockSize;
  const layerStride = positionsPerLayer * kvDim * 4;
  const kCache = arena.take(nLayers * layerStride);
  const vCache = arena.take(nLayers * layerStride);
  const ropeTable = arena.take(maxSeqLen * headDim * 4);
  const loraWidth = 3 * Math.max(1, options.maxRank);
  const x = arena.take(maxRows * dim * 4);
  const xn = arena.take(threads * maxRows * dim * 4);
  const att = arena.take(maxRows * dim * 4);
  const qkv = arena.take(maxRows * (dim + 2 * kvDim) * 4);
  const gu = arena.take(maxRows * 2 * hiddenDim * 4);
  const lora = arena.take(maxRows * loraWidth * 4);
  const logits = arena.take(maxSeqs * vocabSize * 4);
  const blocksPerSeq = Math.ceil(maxSeqLen / options.blockSize);
  const step = arena.take(64);
  const positions = arena.take(maxRows * 4);
  const cacheRows = arena.take(maxRows * 4);
  const seqs = arena.take(maxSeqs * SEQ_INTS * 4);
  const tables = arena.take(maxSeqs * blocksPerSeq * 4);
  const slots = options.adapterSlots;
  const slotTable = arena.take(Math.max(1, slots) * nLayers * LINEAR_TARGETS.length * SLOT_INTS * 4);
  const perLayer = LINEAR_TARGETS.reduce((sum, t) => {
    const { inDim, outDim } = projectionShape(config, t);
    return sum + inDim + outDim;
  }, 0);
  const slotBytes = Math.ceil((options.maxRank * perLayer * nLayers * 4) / 64) * 64;
  const slotPool = arena.take(slots * slotBytes);
  const scratchStride = Math.ceil((4 * Math.max(dim, hiddenDim) * 4 + (maxSeqLen + 4) * 4) / 64) * 64;
  const scratch = arena.take(threads * scratchStride);
  const bytes = Math.ceil(arena.at / PAGE) * PAGE;
  if (bytes > 65536 * PAGE) {
    throw new RangeError(
      `simd backend: the model needs ${(bytes / 2 ** 30).toFixed(2)} GiB in one WebAssembly memory (weights ` +
        `${(weightBytes / 2 ** 30).toFixed(2)} GiB), more than wasm32's 4 GiB: ` +
        "use a quantized file (f16, q8_0, q4_0) or fewer KV blocks",
    );
  }
  return {
    config,
    threads,
    maxRows,
    maxSeqs,
    blocksPerSeq,
    numBlocks: options.numBlocks,
    blockSize: options.blockSize,
    adapterSlots: slots,
    maxRank: options.maxRank,
    bytes,
    weightBytes,
    embedding,
    classifier,
    finalNorm,
    layers,
    kCache,
    vCache,
    layerStride,
    ropeTable,
    x,
    xn,
    att,
    qkv,
    gu,
    lora,
    logits,
    step,
    positions,
    cacheRows,
    seqs,
    tables,
    slotTable,
    slotPool,
    slotBytes,
    scratch,
    scratchStride,
  };
}
