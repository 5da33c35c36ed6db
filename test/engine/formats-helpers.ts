// Fixtures of the format and tokenizer suites: Hugging Face folders written from canonical weights.
import { float32Weights } from "../../node/engine/formats/weight-codec.ts";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { permuteRotateHalfRows } from "../../node/engine/model/rope-basis.ts";
import type { ModelWeights } from "../../node/engine/model/weights.ts";
import { writeSafetensors } from "../../node/engine/formats/safetensors.ts";
import { TOKEN_TYPE } from "../../node/engine/tokenizer/sentencepiece-bpe.ts";
import type { SentencePieceVocab } from "../../node/engine/tokenizer/sentencepiece-bpe.ts";

export const STORIES = join(import.meta.dirname, "../../models/stories260K");

export function scratchDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `openlora-${label}-`));
}

/**
 * A tokenizer.json in the shape Hugging Face's LlamaConverter writes for a SentencePiece BPE model: BPE with
 * byte fallback, merges ranked by the score of the merged piece, "▁" prepended and spaces replaced.
 */
export function llamaTokenizerJson(vocab: SentencePieceVocab): unknown {
  const vocabMap: Record<string, number> = {};
  vocab.pieces.forEach((piece, id) => {
    if (!(piece in vocabMap)) vocabMap[piece] = id;
  });
  const text = new Set(vocab.pieces.filter((_, id) => vocab.types[id] === TOKEN_TYPE.normal));
  const merges: { pair: [string, string]; score: number; id: number }[] = [];
  vocab.pieces.forEach((piece, id) => {
    if (vocab.types[id] !== TOKEN_TYPE.normal) return;
    const chars = [...piece];
    for (let cut = 1; cut < chars.length; cut++) {
      const a = chars.slice(0, cut).join("");
      const b = chars.slice(cut).join("");
      if (text.has(a) && text.has(b)) merges.push({ pair: [a, b], score: vocab.scores[id], id });
    }
  });
  merges.sort((x, y) => y.score - x.score || x.id - y.id);
  const special = (id: number) => ({ id, content: vocab.pieces[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(vocab.unkId), special(vocab.bosId), special(vocab.eosId)],
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "\u2581" }, { type: "Replace", pattern: { String: " " }, content: "\u2581" }],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: vocab.pieces[vocab.bosId], type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: vocab.pieces[vocab.bosId], type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { [vocab.pieces[vocab.bosId]]: { id: vocab.pieces[vocab.bosId], ids: [vocab.bosId], tokens: [vocab.pieces[vocab.bosId]] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "\u2581" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: vocab.pieces[vocab.unkId],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: vocabMap,
      merges: merges.map((m) => m.pair),
    },
  };
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
    t.set(`${p}.self_attn.q_proj.weight`, { shape: [c.dim, c.dim], data: permuteRotateHalfRows(layer.wq, c.nHeads, c.dim) });
    t.set(`${p}.self_attn.k_proj.weight`, { shape: [kvDim, c.dim], data: permuteRotateHalfRows(layer.wk, c.nKvHeads, c.dim) });
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
export function writeHfFolder(folder: string, weights: ModelWeights, vocab: SentencePieceVocab, options: { tied: boolean; shards?: number }): void {
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, "config.json"), JSON.stringify(hfConfigJson(weights, options.tied), null, 2));
  writeFileSync(join(folder, "tokenizer.json"), JSON.stringify(llamaTokenizerJson(vocab)));
  writeFileSync(join(folder, "tokenizer_config.json"), JSON.stringify({ bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", add_bos_token: true, legacy: true }));
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
