// One pass of the forward step on the device, top to bottom as llama2.c's forward(): embed the tokens, then per
// layer attention (RMSNorm, q|k|v with its LoRA, RoPE, K/V into the paged pool, attention, o with its LoRA, added
// to the residual) and the MLP (RMSNorm, gate|up with LoRA, SwiGLU, down with LoRA, added), then for the rows
// that end a sequence the final norm, the classifier, and (when sampling) the sampler; their results are copied
// to the readback buffer at their sequence's index. Everything is recorded into one submit. The architecture's
// departures (model/config.ts) slot in where transformers has them: embedding scale, q|k|v bias and q/k head
// norms before RoPE, attention scale, soft-cap and window, post-norms before the residual adds, GeGLU, and the
// final logit soft-cap.
import { architectureOf, qDimOf, type ModelConfig } from "../../model/config.ts";
import type { SamplingParams } from "../backend.ts";
import type { DeviceModel } from "./device-model.ts";
import type { Site, StepEncoder } from "./kernels.ts";
import * as op from "./ops.ts";
import type { PassTables } from "./pass-plan.ts";
import type { StepBuffers } from "./step-buffers.ts";
import { writeView } from "./tensors.ts";

export interface PassContext {
  config: ModelConfig;
  model: DeviceModel;
  buffers: StepBuffers;
  blockSize: number;
  matvec: op.MatvecKind;
  maxSubgroup: number;
  /** Sampling params and draws by sequence index; null returns logits instead of ids. */
  sampling: { params: readonly SamplingParams[]; uniforms: Float32Array } | null;
  /** Where each sequence's result goes: `outBytes` bytes at seq * outBytes. */
  out: GPUBuffer;
  outBytes: number;
}

export function encodePass(enc: StepEncoder, device: GPUDevice, pass: PassTables, c: PassContext): void {
  const { config, model, buffers: b, blockSize } = c;
  const { dim, nHeads, nKvHeads, headDim, hiddenDim: hidden, vocabSize: vocab, normEps: eps } = config;
  const arch = architectureOf(config);
  const qDim = qDimOf(config);
  const w = b.widths;
  const kvDim = nKvHeads * headDim;
  const T = pass.tokens.length;
  const nTiles = pass.tiles.length / 4;
  const S = pass.lastRows.length;
  uploadTables(device, b, pass);

  const linear = (sites: op.LinearSites, M: number, ldx: number, ldy: number, accumulate: boolean): void =>
    op.linear(enc, sites, { M, ldx, ldy, accumulate, kind: c.matvec, maxSubgroup: c.maxSubgroup });
  // h = norm(x), then h·Wᵀ into a buffer of row stride ldy: fused into one kernel for decode rows where the plan
  // built the sites (h is written all the same: the LoRA shrink reads it).
  const normedLinear = (norm: Site, sites: op.LinearSites, ldy: number): void => {
    if (sites.normed && T <= 4) {
      op.linearNormed(enc, sites, { M: T, ldx: w.dim, ldy, normDim: dim, eps, maxSubgroup: c.maxSubgroup });
    } else {
      op.rmsnorm(enc, norm, { R: T, dim, ldx: w.dim, ldo: w.dim, eps, gather: false });
      linear(sites, T, w.dim, ldy, false);
    }
  };
  const rankStride = config.nLayers * 7;
  // Flash-decoding for passes of few rows over a long context (the longest row's decides).
  const split = model.attentionReduce
    ? op.attentionSplitPlan(
        T,
        pass.positions.reduce((m, p) => Math.max(m, p + 1), 0),
        headDim,
        model.attentionSplitAlways,
      )
    : null;

  model.embedding.chunks.forEach((chunk, i) => {
    op.embed(enc, model.embed[i], {
      T,
      K4: model.embedding.K4,
      rowStart: chunk.rowStart,
      rowCount: chunk.rows,
      scale: arch.embedScale,
      sOff: chunk.sOff,
    });
  });
  model.layers.forEach((L, layer) => {
    const lora = nTiles > 0 ? L.lora : null;
    const sgmv = (group: number, ldx: number, ldy: number): void => {
      if (lora) op.sgmv(enc, lora[group], { nTiles, layer, ldx, ldy, ldv: w.lora, rankStride });
    };
    // Post-norms (Gemma 2): o and down write h, whose norm is added to x; else they add to x directly.
    const residual = (postNorm: Site | null): void => {
      if (postNorm)
        op.rmsnorm(enc, postNorm, { R: T, dim, ldx: w.dim, ldo: w.dim, eps, gather: false, accumulate: true });
    };
    // Attention: h = norm(x); q|k|v = h·Wqkvᵀ (+ LoRA, + bias); q/k head norms; RoPE on q and k; K/V stored; att;
    // x += att·Woᵀ (+ LoRA).
    normedLinear(L.attnNorm, L.qkv, w.qkv);
    sgmv(0, w.dim, w.qkv);
    if (L.qkvBias) op.biasAdd(enc, L.qkvBias, { T, N: w.qkv, ld: w.qkv });
    if (L.qNorm) op.headRmsnorm(enc, L.qNorm, { T, ld: w.qkv, off: 0, heads: nHeads, headDim, eps });
    if (L.kNorm) op.headRmsnorm(enc, L.kNorm, { T, ld: w.qkv, off: qDim, heads: nKvHeads, headDim, eps });
    op.rope(enc, model.rope, { T, ld: w.qkv, heads: nHeads + nKvHeads, headDim });
    op.kvStore(enc, L.kvStore, { T, ld: w.qkv, kvDim, kOff: qDim, vOff: qDim + kvDim });
    const attention: op.AttentionArgs = {
      T,
      nHeads,
      nKvHeads,
      headDim,
      kvDim,
      ldq: w.qkv,
      ldo: w.q,
      blockSize,
      scale: arch.attnScale,
      softcap: arch.attnSoftcap,
      window: arch.slidingWindows[layer],
    };
    if (split && L.attentionSplit && model.attentionReduce) {
      op.attentionSplit(enc, { split: L.attentionSplit, reduce: model.attentionReduce }, attention, split);
    } else {
      op.attention(enc, L.attention, attention);
    }
    linear(L.wo, T, w.q, w.dim, !L.attnPostNorm);
    sgmv(1, w.q, w.dim);
    residual(L.attnPostNorm);
    // MLP: h = norm(x); gate|up = h·Wguᵀ (+ LoRA); act = silu or gelu_tanh (gate) * up; x += act·Wdownᵀ (+ LoRA).
    normedLinear(L.ffnNorm, L.gateUp, w.gateUp);
    sgmv(2, w.dim, w.gateUp);
    op.swiglu(enc, model.swiglu, { T, hidden, ldIn: w.gateUp, upOff: hidden, ldOut: w.hidden });
    linear(L.down, T, w.hidden, w.dim, !L.ffnPostNorm);
    sgmv(3, w.hidden, w.dim);
    residual(L.ffnPostNorm);
  });
  if (S === 0) return enc.submit(device.queue);

  // The rows that end a sequence: final norm (gathered), logits, and the sampled id when sampling.
  op.rmsnorm(enc, model.finalNorm, { R: S, dim, ldx: w.dim, ldo: w.dim, eps, gather: true });
  linear(model.classifier, S, w.dim, vocab, false);
  if (model.softcap) op.softcap(enc, model.softcap, { R: S, N: vocab, ld: vocab, cap: arch.finalSoftcap });
  let result = b.logits;
  let rowBytes = vocab * 4;
  if (c.sampling) {
    writeView(device, b.sampleParams, 0, samplingTable(pass, c.sampling, vocab));
    op.sample(enc, model.sample, { S, vocab, ld: vocab });
    result = b.ids;
    rowBytes = 4;
  }
  // Runs of consecutive sequence indices go out in one copy each.
  const ends = pass.lastRows;
  for (let j = 0; j < S;) {
    let n = 1;
    while (j + n < S && ends[j + n].seq === ends[j].seq + n) n++;
    enc.copy(result, j * rowBytes, c.out, ends[j].seq * c.outBytes, n * rowBytes);
    j += n;
  }
  enc.submit(device.queue);
}

/** Writes a pass's tables into the step buffers (queue-ordered: after every step submitted before). */
export function uploadTables(device: GPUDevice, b: StepBuffers, pass: PassTables): void {
  writeView(device, b.tokens, 0, pass.tokens);
  writeView(device, b.positions, 0, pass.positions);
  writeView(device, b.kvSlots, 0, pass.kvSlots);
  writeView(device, b.tables, 0, pass.tables);
  writeView(device, b.blocks, 0, pass.blocks);
  if (pass.tiles.length > 0) writeView(device, b.tiles, 0, pass.tiles);
  if (pass.lastRows.length > 0)
    writeView(
      device,
      b.lastRows,
      0,
      Uint32Array.from(pass.lastRows, (l) => l.row),
    );
}

/** sample.wgsl's parameters of each sequence end: temperature, top-k (u32), top-p, the uniform draw. */
export function samplingTable(
  pass: PassTables,
  sampling: { params: readonly SamplingParams[]; uniforms: Float32Array },
  vocab: number,
): Float32Array {
  const table = new Float32Array(pass.lastRows.length * 4);
  const asU32 = new Uint32Array(table.buffer);
  pass.lastRows.forEach(({ seq }, j) => {
    const p = sampling.params[seq];
    table[j * 4] = p.temperature;
    asU32[j * 4 + 1] = p.topK > 0 ? Math.min(Math.floor(p.topK), vocab) : 0;
    table[j * 4 + 2] = p.topP;
    table[j * 4 + 3] = sampling.uniforms[seq];
  });
  return table;
}
