// The model on the device, and every dispatch site of the forward pass bound to its buffers once:
//   weights   q|k|v fused [qDim + 2 kvDim, dim], o [dim, qDim], gate|up fused [2 hidden, dim], down [dim, hidden],
//             embedding and classifier [vocab, dim] (one buffer when tied), each in its file's format (f32, f16,
//             bf16, Q8_0, Q4_0, Q4_K, Q6_K: kernels/weights/ decodes them inside the kernels; f32 may be stored as
//             f16 when asked), split into row chunks under the storage binding limit (lavapipe: 128 MiB).
//             The architecture's vectors (model/config.ts): q|k|v bias [qDim + 2 kvDim], q/k norm [headDim],
//             post-norms [dim], f32.
//   KV pool   per layer K and V [numBlocks, blockSize, kvDim], the cpu backend's paging.
//   adapters  per layer and target group (q|k|v, o, gate|up, down): A [slots, targets * rs, in], B [slots, out, rs]
//             with rs = maxRank rounded up to 4, and the step buffers' rank table [slots, layers, 7].
import { architectureOf, LINEAR_TARGETS, projectionShape, qDimOf, type LinearTarget } from "../../model/config.ts";
import type { ModelWeights, WeightDType, WeightMatrix } from "../../model/weights.ts";
import type { BackendOptions } from "../backend.ts";
import type { DeviceMemory } from "./device-memory.ts";
import type { KernelPlan } from "./kernel-plan.ts";
import type { KernelVariant, ParamArena, Pipelines, Site } from "./kernels.ts";
import { loraGroupShape, type LinearSites, type LoraGroup, type MatmulKind, type MatvecKind } from "./ops.ts";
import type { StepBuffers } from "./step-buffers.ts";
import type { DeviceMatrix } from "./tensors.ts";

/** The four groups of LoRA targets that share an input, in the order a layer applies them. */
export const LORA_GROUPS: readonly (readonly LinearTarget[])[] = [["q", "k", "v"], ["o"], ["gate", "up"], ["down"]];

export interface LayerSites {
  attnNorm: Site;
  qkv: LinearSites;
  /** Qwen2: the q|k|v bias added to the fused output; null without biases. */
  qkvBias: Site | null;
  /** Qwen3: the q and k head norms, in place on the fused output; null without. */
  qNorm: Site | null;
  kNorm: Site | null;
  kvStore: Site;
  attention: Site;
  /** attention-split.wgsl over this layer's KV pool (its partials go to attentionReduce); null: never split. */
  attentionSplit: Site | null;
  wo: LinearSites;
  /** Gemma 2: norm of the o output (in h) added to x; null when o adds to x directly. */
  attnPostNorm: Site | null;
  ffnNorm: Site;
  gateUp: LinearSites;
  down: LinearSites;
  /** Gemma 2: norm of the down output (in h) added to x; null when down adds to x directly. */
  ffnPostNorm: Site | null;
  /** One per LORA_GROUPS entry; null when the backend has no adapter slots. */
  lora: LoraGroup[] | null;
}

export interface DeviceModel {
  embed: Site[];
  embedding: DeviceMatrix;
  layers: LayerSites[];
  rope: Site;
  /** gated.wgsl: SwiGLU, or GeGLU for GELU-tanh models. */
  swiglu: Site;
  /** attention-reduce.wgsl: the split's partials into the attention output; null: never split. */
  attentionReduce: Site | null;
  /** Split every pass of few rows, past the threshold or not (the plan's "split"; "auto" keeps the threshold). */
  attentionSplitAlways: boolean;
  finalNorm: Site;
  classifier: LinearSites;
  /** Gemma 2: the final logit soft-cap, in place on the logits; null without. */
  softcap: Site | null;
  sample: Site;
}

export interface DeviceModelContext {
  memory: DeviceMemory;
  pipelines: Pipelines;
  arena: ParamArena;
  buffers: StepBuffers;
  matvec: MatvecKind;
  matmul: MatmulKind;
  /** The variants of the LoRA, attention and norm kernels (kernel-plan.ts). */
  kernels: KernelPlan;
  /** CPU-emulated adapter: fewer threads per sampling workgroup (each barrier switches between all of them). */
  isFallback: boolean;
}

export function buildDeviceModel(weights: ModelWeights, options: BackendOptions, ctx: DeviceModelContext): DeviceModel {
  const { config } = weights;
  const arch = architectureOf(config);
  const qDim = qDimOf(config);
  const { memory, pipelines, arena, buffers: b } = ctx;
  const matvecKernel = ctx.matvec === "splitk" ? "matvec-splitk" : "matvec";
  const tiled = ctx.matmul === "tiled";
  const matmulKernel = tiled ? "matmul-tiled" : "matmul";
  const norm = pipelines.get("rmsnorm");
  const kvStore = pipelines.get("kv-store");
  const attention = pipelines.get("attention", { constants: { HEAD_DIM: config.headDim } });
  // One partials buffer (a step buffer) serves every layer's split: the layers run one after another.
  const attnPartials = ctx.kernels.attention !== "single" ? b.attnPartials : null;
  const attentionSplit = pipelines.get("attention-split", { constants: { HEAD_DIM: config.headDim } });
  const segments = ctx.kernels.sgmv === "segments";
  const shrink = pipelines.get(segments ? "sgmv-shrink-segment" : "sgmv-shrink");
  const expand = segments
    ? pipelines.get("sgmv-expand-segment", { constants: { RS4: Math.max(1, b.widths.rank / 4) } })
    : pipelines.get("sgmv-expand");

  const fuseNorms = ctx.kernels.norm === "fused" && ctx.matvec === "splitk";
  const accumulate = ctx.kernels.matmulAccumulate;
  /** The matmul kernel for a chunk's format: the tiled one in f16 where the plan says so. */
  const matmulVariant = (format: WeightDType): KernelVariant => ({
    weights: format,
    halfAccumulate: tiled && (accumulate === "f16" || (accumulate === "by-weights" && format === "f16")),
  });
  /**
   * The matmul and matvec sites of every chunk of a weight matrix (each its format's kernel), `input` to `output`;
   * with `norm` (input is that norm of the residual stream) also the fused norm sites, when the plan fuses norms.
   */
  const sites = (
    label: string,
    m: DeviceMatrix,
    input: GPUBuffer,
    output: GPUBuffer,
    norm?: GPUBuffer,
  ): LinearSites => ({
    matrix: m,
    matmul: m.chunks.map((c, i) =>
      arena.define(`${label}.mm${i}`, pipelines.get(matmulKernel, matmulVariant(c.format)), [input, c.buffer, output]),
    ),
    tiled,
    matvec:
      ctx.matvec === "matmul"
        ? null
        : m.chunks.map((c, i) =>
            arena.define(`${label}.mv${i}`, pipelines.get(matvecKernel, { weights: c.format }), [
              input,
              c.buffer,
              output,
            ]),
          ),
    normed:
      norm && fuseNorms
        ? m.chunks.map((c, i) =>
            arena.define(`${label}.norm${i}`, pipelines.get("matvec-splitk-norm", { weights: c.format }), [
              b.x,
              c.buffer,
              output,
              norm,
              input,
            ]),
          )
        : null,
  });
  const linear = (label: string, parts: WeightMatrix[], input: GPUBuffer, output: GPUBuffer, norm?: GPUBuffer) =>
    sites(label, memory.matrix(label, parts), input, output, norm);

  const embedding = memory.matrix("embedding", [weights.tokenEmbedding]);
  const tied = weights.classifier === weights.tokenEmbedding;
  const kvDim = config.nKvHeads * config.headDim;
  const poolBytes = options.numBlocks * options.blockSize * kvDim * 4;
  const withLora = options.adapterSlots > 0 && options.maxRank > 0;
  // With post-norms (Gemma 2) o and down write h, which is free by then (its next reader is rewritten first),
  // and the norm adds h to x; without, they add to x directly.
  const residualOut = arch.postNorms ? b.h : b.x;
  // The input and output of each LoRA group, as in the layer: q|k|v reads h, o reads att, ...
  const groupIo: [GPUBuffer, GPUBuffer][] = [
    [b.h, b.qkv],
    [b.att, residualOut],
    [b.h, b.gateUp],
    [b.act, residualOut],
  ];
  const headNorm = pipelines.get("head-rmsnorm");
  const vector = (label: string, data: Float32Array | undefined, length: number): GPUBuffer => {
    if (!data || data.length !== length) throw new RangeError(`webgpu: ${label} needs ${length} values`);
    return memory.weightVector(label, data);
  };

  const layers = weights.layers.map((lw, l): LayerSites => {
    const kPool = memory.buffer(`kPool${l}`, poolBytes);
    const vPool = memory.buffer(`vPool${l}`, poolBytes);
    // What both attention kernels read; the one-pass kernel writes att, the split one its partials.
    const attentionInputs = [b.qkv, kPool, vPool, b.positions, b.tables, b.blocks];
    const attnNorm = vector(`attnNorm${l}`, lw.attnNorm, config.dim);
    const ffnNorm = vector(`ffnNorm${l}`, lw.ffnNorm, config.dim);
    const lora = withLora
      ? LORA_GROUPS.map((targets, g): LoraGroup => {
          const inDim = projectionShape(config, targets[0]).inDim;
          const outDims = targets.map((t) => projectionShape(config, t).outDim);
          const shape = loraGroupShape(inDim, outDims, b.widths.rank, LINEAR_TARGETS.indexOf(targets[0]));
          const a = memory.buffer(`loraA${l}.${g}`, options.adapterSlots * targets.length * shape.rs * shape.K4 * 16);
          const bPool = memory.buffer(`loraB${l}.${g}`, options.adapterSlots * shape.N * shape.rs * 4);
          const [input, output] = groupIo[g];
          return {
            shape,
            targets,
            a,
            b: bPool,
            shrink: arena.define(`shrink${l}.${g}`, shrink, [input, a, b.tiles, b.ranks, b.loraV]),
            expand: arena.define(`expand${l}.${g}`, expand, [b.loraV, bPool, b.tiles, b.ranks, output]),
            segments,
          };
        })
      : null;
    const qkvBias = arch.qkvBias ? vector(`qkvBias${l}`, concat(lw.qBias, lw.kBias, lw.vBias), qDim + 2 * kvDim) : null;
    const postNorm = (label: string, data: Float32Array | undefined): Site | null =>
      arch.postNorms ? arena.define(label, norm, [b.h, vector(label, data, config.dim), b.lastRows, b.x]) : null;
    return {
      attnNorm: arena.define(`attnNorm${l}`, norm, [b.x, attnNorm, b.lastRows, b.h]),
      qkv: linear(`wqkv${l}`, [lw.wq, lw.wk, lw.wv], b.h, b.qkv, attnNorm),
      qkvBias: qkvBias ? arena.define(`qkvBias${l}`, pipelines.get("bias-add"), [b.qkv, qkvBias]) : null,
      qNorm: arch.qkNorm
        ? arena.define(`qNorm${l}`, headNorm, [b.qkv, vector(`qNorm${l}`, lw.qNorm, config.headDim)])
        : null,
      kNorm: arch.qkNorm
        ? arena.define(`kNorm${l}`, headNorm, [b.qkv, vector(`kNorm${l}`, lw.kNorm, config.headDim)])
        : null,
      kvStore: arena.define(`kvStore${l}`, kvStore, [b.qkv, b.kvSlots, kPool, vPool]),
      attention: arena.define(`attention${l}`, attention, [...attentionInputs, b.att]),
      attentionSplit: attnPartials
        ? arena.define(`attentionSplit${l}`, attentionSplit, [...attentionInputs, attnPartials])
        : null,
      wo: linear(`wo${l}`, [lw.wo], b.att, residualOut),
      attnPostNorm: postNorm(`attnPostNorm${l}`, lw.attnPostNorm),
      ffnNorm: arena.define(`ffnNorm${l}`, norm, [b.x, ffnNorm, b.lastRows, b.h]),
      gateUp: linear(`wgu${l}`, [lw.wGate, lw.wUp], b.h, b.gateUp, ffnNorm),
      down: linear(`wdown${l}`, [lw.wDown], b.act, residualOut),
      ffnPostNorm: postNorm(`ffnPostNorm${l}`, lw.ffnPostNorm),
      lora,
    };
  });

  const finalNormWeight = vector("finalNorm", weights.finalNorm, config.dim);
  const classifierMatrix = tied ? embedding : memory.matrix("classifier", [weights.classifier]);
  const classifier = sites("classifier", classifierMatrix, b.last, b.logits);
  const sample = pipelines.get("sample", { constants: { WG: ctx.isFallback ? 64 : 256 } });
  return {
    embed: embedding.chunks.map((c, i) =>
      arena.define(`embed${i}`, pipelines.get("embed", { weights: c.format }), [c.buffer, b.tokens, b.x]),
    ),
    embedding,
    layers,
    rope: arena.define("rope", pipelines.get("rope"), [b.qkv, b.positions, b.rope]),
    swiglu: arena.define(
      "swiglu",
      pipelines.get("gated", { constants: { GELU: arch.activation === "gelu-tanh" ? 1 : 0 } }),
      [b.gateUp, b.act],
    ),
    attentionReduce: attnPartials
      ? arena.define(
          "attentionReduce",
          pipelines.get("attention-reduce", { constants: { HEAD_DIM: config.headDim } }),
          [attnPartials, b.att],
        )
      : null,
    attentionSplitAlways: ctx.kernels.attention === "split",
    finalNorm: arena.define("finalNorm", norm, [b.x, finalNormWeight, b.lastRows, b.last]),
    classifier,
    softcap: arch.finalSoftcap > 0 ? arena.define("softcap", pipelines.get("softcap"), [b.logits]) : null,
    sample: arena.define("sample", sample, [b.logits, b.sampleParams, b.ids]),
  };
}

/** The q, k and v biases as one vector (the fused q|k|v output's columns); undefined when one is missing. */
function concat(...parts: (Float32Array | undefined)[]): Float32Array | undefined {
  if (parts.some((p) => p === undefined)) return undefined;
  const out = new Float32Array(parts.reduce((n, p) => n + p!.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part!, at);
    at += part!.length;
  }
  return out;
}
