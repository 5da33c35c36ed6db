// A model as a Hugging Face folder, the inverse of hf-model.ts: config.json, generation_config.json,
// tokenizer.json + tokenizer_config.json, model.safetensors (float32). Tensors take transformers' names and
// conventions: q/k rows (and their biases and norms) in rotate-half order, Gemma's norm weights as w with the
// model computing 1 + w.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { architectureOf, qDimOf } from "../model/config.ts";
import { permuteRotateHalfRows } from "../model/rope-basis.ts";
import { byteLevelTokenizerJson } from "../tokenizer/byte-level-bpe.ts";
import { sentencePieceTokenizerJson } from "../tokenizer/sentencepiece-json.ts";
import { GGUF_TENSOR } from "./gguf-types.ts";
import { isByteLevelVocab } from "./gguf-write.ts";
import type { FamilyModel } from "./model-presets.ts";
import { writeSafetensors } from "./safetensors.ts";

type Tensors = Map<string, { shape: number[]; data: Float32Array }>;

/** The model's tensors under transformers' names, in transformers' conventions. */
export function hfTensors(model: FamilyModel): Tensors {
  const { config, tensor } = model.input;
  const arch = architectureOf(config);
  const { dim, hiddenDim, vocabSize, headDim, nHeads, nKvHeads } = config;
  const kvDim = nKvHeads * headDim;
  const qDim = qDimOf(config);
  const out: Tensors = new Map();
  const gemma = arch.family === "gemma2";
  const norm = (name: string): Float32Array => (gemma ? tensor(name).map((x) => x - 1) : tensor(name));
  const put = (name: string, shape: number[], data: Float32Array): void => void out.set(name, { shape, data });
  put("model.embed_tokens.weight", [vocabSize, dim], tensor(GGUF_TENSOR.tokenEmbedding));
  for (let l = 0; l < config.nLayers; l++) {
    const n = GGUF_TENSOR.layer(l);
    const v = GGUF_TENSOR.layerVectors(l);
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, [dim], norm(n.attnNorm));
    put(`${p}.self_attn.q_proj.weight`, [qDim, dim], permuteRotateHalfRows(tensor(n.wq), nHeads, dim));
    put(`${p}.self_attn.k_proj.weight`, [kvDim, dim], permuteRotateHalfRows(tensor(n.wk), nKvHeads, dim));
    put(`${p}.self_attn.v_proj.weight`, [kvDim, dim], tensor(n.wv));
    put(`${p}.self_attn.o_proj.weight`, [dim, qDim], tensor(n.wo));
    if (arch.qkvBias) {
      put(`${p}.self_attn.q_proj.bias`, [qDim], permuteRotateHalfRows(tensor(v.qBias), nHeads, 1));
      put(`${p}.self_attn.k_proj.bias`, [kvDim], permuteRotateHalfRows(tensor(v.kBias), nKvHeads, 1));
      put(`${p}.self_attn.v_proj.bias`, [kvDim], tensor(v.vBias));
    }
    if (arch.qkNorm) {
      put(`${p}.self_attn.q_norm.weight`, [headDim], permuteRotateHalfRows(tensor(v.qNorm), 1, 1));
      put(`${p}.self_attn.k_norm.weight`, [headDim], permuteRotateHalfRows(tensor(v.kNorm), 1, 1));
    }
    if (arch.postNorms) {
      put(`${p}.post_attention_layernorm.weight`, [dim], norm(v.attnPostNorm));
      put(`${p}.pre_feedforward_layernorm.weight`, [dim], norm(n.ffnNorm));
      put(`${p}.post_feedforward_layernorm.weight`, [dim], norm(v.ffnPostNorm));
    } else {
      put(`${p}.post_attention_layernorm.weight`, [dim], norm(n.ffnNorm));
    }
    put(`${p}.mlp.gate_proj.weight`, [hiddenDim, dim], tensor(n.wGate));
    put(`${p}.mlp.up_proj.weight`, [hiddenDim, dim], tensor(n.wUp));
    put(`${p}.mlp.down_proj.weight`, [dim, hiddenDim], tensor(n.wDown));
  }
  put("model.norm.weight", [dim], norm(GGUF_TENSOR.finalNorm));
  if (!model.input.tiedClassifier) put("lm_head.weight", [vocabSize, dim], tensor(GGUF_TENSOR.classifier));
  return out;
}

/** The tokenizer.json of the model's vocabulary, as transformers' converters write it. */
export function hfTokenizerJson(model: FamilyModel): Record<string, unknown> {
  const { vocab } = model.input;
  return isByteLevelVocab(vocab)
    ? byteLevelTokenizerJson(vocab, model.input.name)
    : sentencePieceTokenizerJson(vocab, { addSpacePrefix: model.input.addSpacePrefix ?? true });
}

/** Writes the folder (created when missing); everything in memory, float32: for test and benchmark sizes. */
export function writeHfModel(folder: string, model: FamilyModel): void {
  mkdirSync(folder, { recursive: true });
  const json = (name: string, value: unknown): void =>
    writeFileSync(join(folder, name), JSON.stringify(value, null, 2) + "\n");
  json("config.json", model.hfConfig);
  json("generation_config.json", model.generationConfig);
  json("tokenizer_config.json", model.tokenizerConfig);
  writeFileSync(join(folder, "tokenizer.json"), JSON.stringify(hfTokenizerJson(model)));
  writeFileSync(join(folder, "model.safetensors"), writeSafetensors(hfTensors(model), { format: "pt" }));
}
