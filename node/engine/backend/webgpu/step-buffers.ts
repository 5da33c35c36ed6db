// The buffers of one forward pass: activations, the step's tables (tokens, positions, KV slots, block tables,
// SGMV tiles, rows whose logits are wanted) and the outputs. Sized once at creation for `maxRows` rows and
// `maxLast` sequence ends per pass; a step with more rows runs in several passes.
import { qDimOf, type ModelConfig } from "../../model/config.ts";
import { ropeInverseFrequencies } from "../../model/rope.ts";
import type { BackendOptions } from "../backend.ts";
import type { DeviceMemory } from "./device-memory.ts";
import { pad4 } from "./kernels.ts";
import { attentionPartialsFloats } from "./ops.ts";

/** Row widths (leading dimensions, in floats) of the activations: vec4-read rows are padded to 4. */
export interface Widths {
  dim: number;
  hidden: number;
  /** Attention output (the o projection's input): qDim = nHeads x headDim. */
  q: number;
  /** q|k|v output: qDim + 2 kvDim. */
  qkv: number;
  /** gate|up output: 2 hidden. */
  gateUp: number;
  /** LoRA intermediate v: up to 3 targets x slot rank (rounded to 4). */
  lora: number;
  /** Slot rank rounded up to 4. */
  rank: number;
}

export interface StepBuffers {
  widths: Widths;
  /** Rows per pass, and sequence ends (logits rows) per pass. */
  maxRows: number;
  maxLast: number;
  /** The residual stream [rows, dim]. */
  x: GPUBuffer;
  /** The normed residual [rows, dim]. */
  h: GPUBuffer;
  qkv: GPUBuffer;
  /** Attention output [rows, widths.q]. */
  att: GPUBuffer;
  gateUp: GPUBuffer;
  /** SwiGLU output [rows, hidden]. */
  act: GPUBuffer;
  /** LoRA shrink output [rows, widths.lora]. */
  loraV: GPUBuffer;
  /** Final-normed rows of the sequence ends [maxLast, dim], their logits, and their sampled ids. */
  last: GPUBuffer;
  logits: GPUBuffer;
  ids: GPUBuffer;
  tokens: GPUBuffer;
  positions: GPUBuffer;
  kvSlots: GPUBuffer;
  /** Per row: offset of its sequence's block table in `blocks`. */
  tables: GPUBuffer;
  blocks: GPUBuffer;
  tiles: GPUBuffer;
  lastRows: GPUBuffer;
  sampleParams: GPUBuffer;
  /** cos/sin of every (position, pair) [maxSeqLen, headDim]. */
  rope: GPUBuffer;
  /** Rank of every (slot, layer, target) [slots, layers, 7]. */
  ranks: GPUBuffer;
  /** attention-split.wgsl's partials (ops.ts attentionPartialsFloats), shared by every layer's split. */
  attnPartials: GPUBuffer;
}

/** Everything a step buffer's size depends on: the slot rank, the slot count (rank table), rows per pass. */
export type StepBufferOptions = Pick<BackendOptions, "blockSize" | "adapterSlots" | "maxRank"> & {
  maxRowsPerPass?: number;
};

/** The step buffers' sizes: row widths, rows and sequence ends per pass, and each buffer's floats. */
export interface StepBufferLayout {
  widths: Widths;
  maxRows: number;
  maxLast: number;
  floats: Record<Exclude<keyof StepBuffers, "widths" | "maxRows" | "maxLast">, number>;
}

/** Sizes the step buffers for `maxBinding` bytes a binding (rows per pass are lowered to fit it). */
export function stepBufferLayout(
  config: ModelConfig,
  options: StepBufferOptions,
  maxBinding: number,
): StepBufferLayout {
  const kvDim = config.nKvHeads * config.headDim;
  const rank = pad4(Math.max(0, options.maxRank));
  const qDim = qDimOf(config);
  const widths: Widths = {
    dim: pad4(config.dim),
    hidden: pad4(config.hiddenDim),
    q: pad4(qDim),
    qkv: qDim + 2 * kvDim,
    gateUp: 2 * config.hiddenDim,
    lora: Math.max(4, 3 * rank),
    rank,
  };
  const widest = Math.max(widths.dim, widths.q, widths.qkv, widths.gateUp, widths.hidden, widths.lora);
  const maxRows = Math.max(1, Math.min(options.maxRowsPerPass ?? 256, Math.floor(maxBinding / (4 * widest))));
  const maxLast = Math.max(1, Math.min(maxRows, Math.floor(maxBinding / (4 * config.vocabSize))));
  const blocksPerSeq = Math.ceil(config.maxSeqLen / options.blockSize);
  return {
    widths,
    maxRows,
    maxLast,
    floats: {
      x: maxRows * widths.dim,
      h: maxRows * widths.dim,
      qkv: maxRows * widths.qkv,
      att: maxRows * widths.q,
      gateUp: maxRows * widths.gateUp,
      act: maxRows * widths.hidden,
      loraV: maxRows * widths.lora,
      last: maxLast * widths.dim,
      logits: maxLast * config.vocabSize,
      ids: maxLast,
      tokens: maxRows,
      positions: maxRows,
      kvSlots: maxRows,
      tables: maxRows,
      blocks: maxRows * blocksPerSeq,
      tiles: maxRows * 4,
      lastRows: maxLast,
      sampleParams: maxLast * 4,
      rope: config.maxSeqLen * config.headDim,
      ranks: Math.max(1, options.adapterSlots) * config.nLayers * 7,
      attnPartials: attentionPartialsFloats(config.nHeads, config.headDim),
    },
  };
}

/** Bytes the step buffers of a layout take on the device (storage buffers round up to 16 bytes). */
export function stepBufferBytes(layout: StepBufferLayout): number {
  return Object.values(layout.floats).reduce((n, floats) => n + Math.max(16, Math.ceil((4 * floats) / 16) * 16), 0);
}

export function allocateStepBuffers(
  memory: DeviceMemory,
  config: ModelConfig,
  options: StepBufferOptions,
): StepBuffers {
  const { widths, maxRows, maxLast, floats } = stepBufferLayout(config, options, memory.maxBinding);
  const f32 = (label: keyof StepBufferLayout["floats"], data?: Float32Array): GPUBuffer =>
    memory.buffer(label, floats[label] * 4, data);
  return {
    widths,
    maxRows,
    maxLast,
    x: f32("x"),
    h: f32("h"),
    qkv: f32("qkv"),
    att: f32("att"),
    gateUp: f32("gateUp"),
    act: f32("act"),
    loraV: f32("loraV"),
    last: f32("last"),
    logits: f32("logits"),
    ids: f32("ids"),
    tokens: f32("tokens"),
    positions: f32("positions"),
    kvSlots: f32("kvSlots"),
    tables: f32("tables"),
    blocks: f32("blocks"),
    tiles: f32("tiles"),
    lastRows: f32("lastRows"),
    sampleParams: f32("sampleParams"),
    rope: f32("rope", ropeTable(config)),
    ranks: f32("ranks"),
    attnPartials: f32("attnPartials"),
  };
}

/**
 * cos and sin of position x the inverse frequency of pair i/2 (model/rope.ts: theta^(-i/headDim), divided by
 * Llama 3's factors) for every position and even i, interleaved (llama2.c's RoPE).
 */
function ropeTable(config: ModelConfig): Float32Array {
  const { headDim, maxSeqLen } = config;
  const inverseFrequencies = ropeInverseFrequencies(config);
  const table = new Float32Array(maxSeqLen * headDim);
  for (let pos = 0; pos < maxSeqLen; pos++) {
    for (let i = 0; i < headDim; i += 2) {
      const angle = pos * inverseFrequencies[i / 2];
      table[pos * headDim + i] = Math.cos(angle);
      table[pos * headDim + i + 1] = Math.sin(angle);
    }
  }
  return table;
}
