import type { LoraAdapter, LoraPair } from "../../adapter/lora.ts";
import { architectureOf, projectionShape, qDimOf, type LinearTarget } from "../../model/config.ts";
import { ropeInverseFrequencies } from "../../model/rope.ts";
import type { ModelWeights } from "../../model/weights.ts";
import { float32Weights } from "../../formats/weight-codec.ts";
import { sampleToken } from "../../sampling/sample.ts";
import type { Backend, BackendOptions, SamplingParams, SequenceStep } from "../backend.ts";
import { checkAdapterFits, checkSteps } from "../checks.ts";
import {
  addBias,
  addInto,
  geglu,
  kvRow,
  matmul,
  pagedAttention,
  rmsnorm,
  rope,
  softcap,
  swiglu,
  type PagedKv,
} from "./ops.ts";

/** The rows one sequence occupies in a step's activations, and the adapter that applies to them. */
interface Segment {
  start: number;
  rows: number;
  adapter: LoraAdapter | null;
}

/**
 * The reference backend: the forward pass over a batch of sequences, top to bottom, in float32 arrays, with every
 * departure of the model's architecture from plain LLaMA (model/config.ts Architecture) where transformers
 * applies it. LoRA is applied unmerged, per sequence: y = W x + B (A x), with the scale already in B.
 */
export function createCpuBackend(source: ModelWeights, options: BackendOptions): Backend {
  const weights = float32Weights(source); // the reference computes in float32
  const config = weights.config;
  const arch = architectureOf(config);
  const inverseFrequencies = ropeInverseFrequencies(config);
  const kvDim = config.nKvHeads * config.headDim;
  const qDim = qDimOf(config);
  const poolFloats = config.nLayers * options.numBlocks * options.blockSize * kvDim;
  const kCache = new Float32Array(poolFloats);
  const vCache = new Float32Array(poolFloats);
  const slots: (LoraAdapter | null)[] = new Array(options.adapterSlots).fill(null);

  const weightFloats =
    weights.tokenEmbedding.length +
    weights.finalNorm.length +
    (weights.classifier === weights.tokenEmbedding ? 0 : weights.classifier.length) +
    weights.layers.reduce((sum, l) => sum + Object.values(l).reduce((s, w: Float32Array) => s + w.length, 0), 0);

  /** out = x W^T, plus each segment's LoRA for this target: out[rows] += (x[rows] A^T) B^T. */
  function linear(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array,
    layer: number,
    target: LinearTarget,
    segments: Segment[],
    totalRows: number,
  ): void {
    const { inDim, outDim } = projectionShape(config, target);
    matmul(out, x, w, totalRows, inDim, outDim);
    for (const segment of segments) {
      const pair: LoraPair | undefined = segment.adapter?.layers[layer]?.[target];
      if (!pair) continue;
      const xs = x.subarray(segment.start * inDim, (segment.start + segment.rows) * inDim);
      const shrunk = new Float32Array(segment.rows * pair.rank);
      matmul(shrunk, xs, pair.a, segment.rows, inDim, pair.rank); // shrink: v = x A^T
      const expanded = new Float32Array(segment.rows * outDim);
      matmul(expanded, shrunk, pair.b, segment.rows, pair.rank, outDim); // expand: B v
      addInto(out.subarray(segment.start * outDim, (segment.start + segment.rows) * outDim), expanded);
    }
  }

  async function forward(steps: readonly SequenceStep[]): Promise<Float32Array> {
    checkSteps(steps, config, options);
    const { dim, hiddenDim, nHeads, nKvHeads, headDim, vocabSize } = config;
    const totalRows = steps.reduce((n, s) => n + s.tokens.length, 0);
    const segments: Segment[] = [];
    const positions: number[] = [];
    let start = 0;
    for (const step of steps) {
      segments.push({ start, rows: step.tokens.length, adapter: step.slot >= 0 ? slots[step.slot] : null });
      step.tokens.forEach((_, i) => positions.push(step.position + i));
      start += step.tokens.length;
    }

    // Token embeddings: the residual stream x, one row per new token (Gemma scales them by sqrt(dim)).
    const x = new Float32Array(totalRows * dim);
    let row = 0;
    for (const step of steps) {
      for (const token of step.tokens)
        x.set(weights.tokenEmbedding.subarray(token * dim, (token + 1) * dim), dim * row++);
    }
    if (arch.embedScale !== 1) for (let i = 0; i < x.length; i++) x[i] *= arch.embedScale;

    const xn = new Float32Array(totalRows * dim);
    const q = new Float32Array(totalRows * qDim);
    const k = new Float32Array(totalRows * kvDim);
    const v = new Float32Array(totalRows * kvDim);
    const attended = new Float32Array(totalRows * qDim);
    const projected = new Float32Array(totalRows * dim);
    const gate = new Float32Array(totalRows * hiddenDim);
    const up = new Float32Array(totalRows * hiddenDim);
    const hidden = new Float32Array(totalRows * hiddenDim);
    const activation = arch.activation === "gelu-tanh" ? geglu : swiglu;
    /** x += y, through Gemma 2's norm of y first when the layer has one. */
    const residual = (y: Float32Array, postNorm: Float32Array | undefined): void => {
      if (postNorm) rmsnorm(y, y, postNorm, totalRows, dim, config.normEps);
      addInto(x, y);
    };

    for (let l = 0; l < config.nLayers; l++) {
      const layer = weights.layers[l];
      // Attention: norm, q/k/v projections (+LoRA, + bias), q/k head norms, RoPE, append K/V to the paged cache,
      // attend, output projection (+LoRA), its post-norm, residual.
      rmsnorm(xn, x, layer.attnNorm, totalRows, dim, config.normEps);
      linear(q, xn, layer.wq, l, "q", segments, totalRows);
      linear(k, xn, layer.wk, l, "k", segments, totalRows);
      linear(v, xn, layer.wv, l, "v", segments, totalRows);
      if (arch.qkvBias) {
        addBias(q, layer.qBias!);
        addBias(k, layer.kBias!);
        addBias(v, layer.vBias!);
      }
      if (arch.qkNorm) {
        rmsnorm(q, q, layer.qNorm!, totalRows * nHeads, headDim, config.normEps);
        rmsnorm(k, k, layer.kNorm!, totalRows * nKvHeads, headDim, config.normEps);
      }
      rope(q, positions, nHeads, headDim, inverseFrequencies);
      rope(k, positions, nKvHeads, headDim, inverseFrequencies);
      const scoring = { scale: arch.attnScale, softcap: arch.attnSoftcap, window: arch.slidingWindows[l] };
      const kv: PagedKv = {
        k: kCache,
        v: vCache,
        layerOffset: l * options.numBlocks * options.blockSize * kvDim,
        blockSize: options.blockSize,
        kvDim,
      };
      steps.forEach((step, s) => {
        for (let i = 0; i < step.tokens.length; i++) {
          const p = step.position + i;
          const at = kvRow(kv, step.blockTable, p);
          const r = segments[s].start + i;
          kCache.set(k.subarray(r * kvDim, (r + 1) * kvDim), at);
          vCache.set(v.subarray(r * kvDim, (r + 1) * kvDim), at);
        }
        const { start: s0, rows } = segments[s];
        const out = attended.subarray(s0 * qDim, (s0 + rows) * qDim);
        pagedAttention(
          out,
          q.subarray(s0 * qDim, (s0 + rows) * qDim),
          kv,
          step.blockTable,
          step.position,
          rows,
          nHeads,
          nKvHeads,
          headDim,
          scoring,
        );
      });
      linear(projected, attended, layer.wo, l, "o", segments, totalRows);
      residual(projected, layer.attnPostNorm);

      // MLP: norm, SwiGLU or GeGLU (gate, up) (+LoRA), down projection (+LoRA), its post-norm, residual.
      rmsnorm(xn, x, layer.ffnNorm, totalRows, dim, config.normEps);
      linear(gate, xn, layer.wGate, l, "gate", segments, totalRows);
      linear(up, xn, layer.wUp, l, "up", segments, totalRows);
      activation(hidden, gate, up);
      linear(projected, hidden, layer.wDown, l, "down", segments, totalRows);
      residual(projected, layer.ffnPostNorm);
    }

    // Logits of each sequence's last row only.
    const last = new Float32Array(steps.length * dim);
    segments.forEach((segment, s) => {
      const r = segment.start + segment.rows - 1;
      last.set(x.subarray(r * dim, (r + 1) * dim), s * dim);
    });
    const lastNormed = new Float32Array(steps.length * dim);
    rmsnorm(lastNormed, last, weights.finalNorm, steps.length, dim, config.normEps);
    const logits = new Float32Array(steps.length * vocabSize);
    matmul(logits, lastNormed, weights.classifier, steps.length, dim, vocabSize);
    if (arch.finalSoftcap > 0) softcap(logits, arch.finalSoftcap);
    return logits;
  }

  return {
    kind: "cpu",
    device: "cpu (TypeScript reference)",
    config,
    options,
    memoryBytes: 4 * (weightFloats + 2 * poolFloats),
    async setAdapter(slot, adapter) {
      if (!Number.isInteger(slot) || slot < 0 || slot >= options.adapterSlots)
        throw new RangeError(`adapter slot ${slot} outside 0..${options.adapterSlots - 1}`);
      if (adapter) checkAdapterFits(adapter, config, options);
      slots[slot] = adapter;
    },
    forward,
    async sample(steps, params: readonly SamplingParams[], uniforms) {
      const logits = await forward(steps);
      const vocab = config.vocabSize;
      return Int32Array.from(steps, (_, i) =>
        sampleToken(logits.subarray(i * vocab, (i + 1) * vocab), params[i], uniforms[i]),
      );
    },
    async close() {},
  };
}
