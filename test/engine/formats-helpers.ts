// Fixtures of the format and tokenizer suites: Hugging Face folders written from canonical weights.
import { float32Weights } from "../../node/engine/formats/weight-codec.ts";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { permuteRotateHalfRows } from "../../node/engine/model/rope-basis.ts";
import type { ModelWeights } from "../../node/engine/model/weights.ts";
import { writeSafetensors } from "../../node/engine/formats/safetensors.ts";
import { sentencePieceTokenizerJson } from "../../node/engine/tokenizer/sentencepiece-json.ts";
import type { SentencePieceVocab } from "../../node/engine/tokenizer/sentencepiece-bpe.ts";

export const STORIES = join(import.meta.dirname, "../../models/stories260K");

export function scratchDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `openlora-${label}-`));
}

/** A tokenizer.json in the shape Hugging Face's LlamaConverter writes for a SentencePiece BPE model. */
export function llamaTokenizerJson(vocab: SentencePieceVocab): unknown {
  return sentencePieceTokenizerJson(vocab);
}

/** The tensors of a Hugging Face Llama checkpoint, q/k rows permuted to rotate-half order as HF stores them. */
export function hfTensors(model: ModelWeights, tied: boolean): Map<string, { shape: number[]; data: Float32Array }> {
  const weights = float32Weights(model);
  const c = weights.config;
  const kvDim = c.nKvHeads * c.headDim;
  const t = new Map<string, { shape: number[]; data: Float32Array }>();
  t.set("model.embed_tokens.weight", { shape: [c.vocabSize, c.dim], data: weights.tokenEmbedding });
  weights.layers.forEach((layer, l) => {
    const p = `model.layers.${l}`;
    t.set(`${p}.input_layernorm.weight`, { shape: [c.dim], data: layer.attnNorm });
    t.set(`${p}.self_attn.q_proj.weight`, {
      shape: [c.dim, c.dim],
      data: permuteRotateHalfRows(layer.wq, c.nHeads, c.dim),
    });
    t.set(`${p}.self_attn.k_proj.weight`, {
      shape: [kvDim, c.dim],
      data: permuteRotateHalfRows(layer.wk, c.nKvHeads, c.dim),
    });
    t.set(`${p}.self_attn.v_proj.weight`, { shape: [kvDim, c.dim], data: layer.wv });
    t.set(`${p}.self_attn.o_proj.weight`, { shape: [c.dim, c.dim], data: layer.wo });
    t.set(`${p}.post_attention_layernorm.weight`, { shape: [c.dim], data: layer.ffnNorm });
    t.set(`${p}.mlp.gate_proj.weight`, { shape: [c.hiddenDim, c.dim], data: layer.wGate });
    t.set(`${p}.mlp.up_proj.weight`, { shape: [c.hiddenDim, c.dim], data: layer.wUp });
    t.set(`${p}.mlp.down_proj.weight`, { shape: [c.dim, c.hiddenDim], data: layer.wDown });
  });
  t.set("model.norm.weight", { shape: [c.dim], data: weights.finalNorm });
  if (!tied) t.set("lm_head.weight", { shape: [c.vocabSize, c.dim], data: weights.classifier });
  return t;
}

export function hfConfigJson(weights: ModelWeights, tied: boolean): Record<string, unknown> {
  const c = weights.config;
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    _name_or_path: "test/hf-llama",
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: tied,
    hidden_act: "silu",
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: "float32",
  };
}

/**
 * Writes a Hugging Face folder: config.json, tokenizer.json + tokenizer_config.json, and either one
 * model.safetensors or `shards` files with model.safetensors.index.json.
 */
export function writeHfFolder(
  folder: string,
  weights: ModelWeights,
  vocab: SentencePieceVocab,
  options: { tied: boolean; shards?: number },
): void {
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, "config.json"), JSON.stringify(hfConfigJson(weights, options.tied), null, 2));
  writeFileSync(join(folder, "tokenizer.json"), JSON.stringify(llamaTokenizerJson(vocab)));
  writeFileSync(
    join(folder, "tokenizer_config.json"),
    JSON.stringify({ bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", add_bos_token: true, legacy: true }),
  );
  const tensors = hfTensors(weights, options.tied);
  const shards = options.shards ?? 1;
  if (shards === 1) {
    writeFileSync(join(folder, "model.safetensors"), writeSafetensors(tensors));
    return;
  }
  const names = [...tensors.keys()];
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
    const part = new Map(names.filter((_, i) => i % shards === s).map((n) => [n, tensors.get(n)!]));
    for (const name of part.keys()) weightMap[name] = file;
    writeFileSync(join(folder, file), writeSafetensors(part));
  }
  writeFileSync(join(folder, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}
