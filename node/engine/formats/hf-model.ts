// A Hugging Face LlamaForCausalLM folder: config.json, model.safetensors (or shards + index), tokenizer.json.
import { existsSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { ModelFormatError } from "../errors.ts";
import { configProblem } from "../model/config.ts";
import type { ModelConfig } from "../model/config.ts";
import { unpermuteRotateHalfRows } from "../model/rope-basis.ts";
import type { LayerWeights, LoadedModel, ModelWeights, WeightMatrix } from "../model/weights.ts";
import { loadHfTokenizer } from "../tokenizer/hf-tokenizer.ts";
import { SafetensorsFile } from "./safetensors.ts";
import { dequantize, float32Matrix, weightMatrix } from "./weight-codec.ts";

const SUPPORTED_ARCHITECTURES = ["LlamaForCausalLM"];

/** config.json as far as this engine reads it. */
export interface HfLlamaConfig {
  config: ModelConfig;
  tiedClassifier: boolean;
  name?: string;
  bosId?: number;
  eosId?: number;
}

function readJsonFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ModelFormatError(path, `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ModelFormatError(path, `not valid JSON (${(error as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ModelFormatError(path, "not a JSON object");
  return value as Record<string, unknown>;
}

/** Parses config.json of a Llama model; refuses features the engine would silently get wrong. */
export function parseHfConfig(raw: Record<string, unknown>, file: string): HfLlamaConfig {
  const architectures = raw.architectures;
  if (Array.isArray(architectures) && !architectures.some((a) => SUPPORTED_ARCHITECTURES.includes(a as string))) {
    throw new ModelFormatError(file, `architectures ${JSON.stringify(architectures)} are not supported (only ${SUPPORTED_ARCHITECTURES.join(", ")})`);
  }
  if (!Array.isArray(architectures) && raw.model_type !== "llama") {
    throw new ModelFormatError(file, `model_type ${JSON.stringify(raw.model_type)} is not supported (only "llama")`);
  }
  const int = (key: string, fallback?: number): number => {
    const value = raw[key] ?? fallback;
    if (value === undefined) throw new ModelFormatError(file, `${key} is missing`);
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) throw new ModelFormatError(file, `${key} must be a positive integer, got ${JSON.stringify(value)}`);
    return value;
  };
  const real = (key: string, fallback: number): number => {
    const value = raw[key] ?? fallback;
    if (typeof value !== "number" || !(value > 0)) throw new ModelFormatError(file, `${key} must be a positive number, got ${JSON.stringify(value)}`);
    return value;
  };
  const dim = int("hidden_size");
  const nHeads = int("num_attention_heads");
  const config: ModelConfig = {
    dim,
    hiddenDim: int("intermediate_size"),
    nLayers: int("num_hidden_layers"),
    nHeads,
    nKvHeads: int("num_key_value_heads", nHeads),
    headDim: dim / nHeads,
    vocabSize: int("vocab_size"),
    maxSeqLen: int("max_position_embeddings", 2048),
    normEps: real("rms_norm_eps", 1e-6), // LlamaConfig's defaults
    ropeTheta: real("rope_theta", 10000),
  };
  const problem = configProblem(config);
  if (problem) throw new ModelFormatError(file, problem);
  if (raw.head_dim !== undefined && raw.head_dim !== null && raw.head_dim !== config.headDim) {
    throw new ModelFormatError(file, `head_dim ${JSON.stringify(raw.head_dim)} != hidden_size / num_attention_heads = ${config.headDim} (not supported)`);
  }
  if (raw.rope_scaling !== undefined && raw.rope_scaling !== null) {
    throw new ModelFormatError(file, `rope_scaling ${JSON.stringify(raw.rope_scaling)} is not supported`);
  }
  if (raw.hidden_act !== undefined && raw.hidden_act !== "silu") {
    throw new ModelFormatError(file, `hidden_act ${JSON.stringify(raw.hidden_act)} is not supported (only "silu")`);
  }
  for (const key of ["attention_bias", "mlp_bias"]) {
    if (raw[key] === true) throw new ModelFormatError(file, `${key} true is not supported`);
  }
  const optionalId = (key: string): number | undefined => {
    const value = Array.isArray(raw[key]) ? (raw[key] as unknown[])[0] : raw[key]; // Llama 3 lists several EOS ids
    return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : undefined;
  };
  return {
    config,
    tiedClassifier: raw.tie_word_embeddings === true,
    // A hub id ("meta-llama/Llama-2-7b-hf") is kept; a local path saved by transformers is cut to its last part.
    name: typeof raw._name_or_path === "string" && raw._name_or_path !== ""
      ? /^[./\\~]|^[A-Za-z]:/.test(raw._name_or_path) ? basename(raw._name_or_path) : raw._name_or_path
      : undefined,
    bosId: optionalId("bos_token_id"),
    eosId: optionalId("eos_token_id"),
  };
}

/** Which safetensors file holds each tensor: the index's weight_map, or everything in model.safetensors. */
function weightFiles(folder: string): { shardOf: (key: string) => string | undefined; describe: string } {
  const indexPath = join(folder, "model.safetensors.index.json");
  if (existsSync(indexPath)) {
    const index = readJsonFile(indexPath);
    const map = index.weight_map;
    if (typeof map !== "object" || map === null || Array.isArray(map)) throw new ModelFormatError(indexPath, "weight_map is missing or not an object");
    const entries = map as Record<string, unknown>;
    for (const [key, shard] of Object.entries(entries)) {
      if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\")) {
        throw new ModelFormatError(indexPath, `weight_map[${key}] is not a file name in the folder: ${JSON.stringify(shard)}`);
      }
    }
    return { shardOf: (key) => (entries[key] === undefined ? undefined : join(folder, entries[key] as string)), describe: indexPath };
  }
  const single = join(folder, "model.safetensors");
  if (existsSync(single)) return { shardOf: () => single, describe: single };
  const hint = existsSync(join(folder, "pytorch_model.bin")) ? " (pytorch_model.bin is not read; convert it to safetensors)" : "";
  throw new ModelFormatError(folder, `no weights: looked for model.safetensors and model.safetensors.index.json${hint}`);
}

/** Canonical weights from the safetensors of a folder; q/k rows go from rotate-half back to interleaved. */
export function readHfWeights(folder: string, parsed: HfLlamaConfig): ModelWeights {
  const { config } = parsed;
  const { dim, hiddenDim, vocabSize } = config;
  const kvDim = config.nKvHeads * config.headDim;
  const files = weightFiles(folder);
  const open = new Map<string, SafetensorsFile>();
  try {
    const entryOf = (key: string, shape: number[]): SafetensorsFile => {
      const shard = files.shardOf(key);
      if (shard === undefined) throw new ModelFormatError(files.describe, `tensor ${key} is missing from the weight_map`);
      let file = open.get(shard);
      if (!file) {
        file = SafetensorsFile.open(shard);
        open.set(shard, file);
      }
      const entry = file.tensors.get(key);
      if (!entry) throw new ModelFormatError(shard, `tensor ${key} is missing`);
      if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
        throw new ModelFormatError(shard, `tensor ${key} has shape [${entry.shape}], config.json implies [${shape}]`);
      }
      return file;
    };
    const vector = (key: string, length: number): Float32Array => entryOf(key, [length]).read(key);
    const matrix = (key: string, rows: number, cols: number): WeightMatrix => entryOf(key, [rows, cols]).readMatrix(key);
    const tokenEmbedding = matrix("model.embed_tokens.weight", vocabSize, dim);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < config.nLayers; l++) {
      const p = `model.layers.${l}`;
      layers.push({
        attnNorm: vector(`${p}.input_layernorm.weight`, dim),
        wq: unpermuteMatrixRows(matrix(`${p}.self_attn.q_proj.weight`, dim, dim), config.nHeads),
        wk: unpermuteMatrixRows(matrix(`${p}.self_attn.k_proj.weight`, kvDim, dim), config.nKvHeads),
        wv: matrix(`${p}.self_attn.v_proj.weight`, kvDim, dim),
        wo: matrix(`${p}.self_attn.o_proj.weight`, dim, dim),
        ffnNorm: vector(`${p}.post_attention_layernorm.weight`, dim),
        wGate: matrix(`${p}.mlp.gate_proj.weight`, hiddenDim, dim),
        wUp: matrix(`${p}.mlp.up_proj.weight`, hiddenDim, dim),
        wDown: matrix(`${p}.mlp.down_proj.weight`, dim, hiddenDim),
      });
    }
    const finalNorm = vector("model.norm.weight", dim);
    const classifier = parsed.tiedClassifier ? tokenEmbedding : matrix("lm_head.weight", vocabSize, dim);
    return { config, tokenEmbedding, layers, finalNorm, classifier };
  } finally {
    for (const file of open.values()) file.close();
  }
}

/**
 * q/k rows from rotate-half back to the canonical order, in the matrix's own precision: the row mover works on
 * rows of 4-byte words, which any row whose byte length is a multiple of 4 is; others go through float32.
 */
function unpermuteMatrixRows(m: WeightMatrix, nHeads: number): WeightMatrix {
  const bytes = m.data.length / m.rows;
  if (bytes % 4 !== 0 || m.data.byteOffset % 4 !== 0) {
    return float32Matrix(m.rows, m.cols, unpermuteRotateHalfRows(dequantize(m), nHeads, m.cols));
  }
  const words = new Float32Array(m.data.buffer, m.data.byteOffset, m.data.length / 4);
  const moved = unpermuteRotateHalfRows(words, nHeads, bytes / 4);
  return weightMatrix(m.dtype, m.rows, m.cols, new Uint8Array(moved.buffer));
}

/** A Hugging Face Llama folder into a LoadedModel (qkBasis "rotate-half": its adapters need the same un-permute). */
export function loadHfModel(folder: string): LoadedModel {
  const configPath = join(folder, "config.json");
  if (!existsSync(configPath)) throw new ModelFormatError(folder, "not a Hugging Face model folder: no config.json");
  const parsed = parseHfConfig(readJsonFile(configPath), configPath);
  const tokenizer = loadHfTokenizer(folder, { bosId: parsed.bosId, eosId: parsed.eosId });
  if (tokenizer.vocabSize > parsed.config.vocabSize) {
    throw new ModelFormatError(join(folder, "tokenizer.json"), `tokenizer has ${tokenizer.vocabSize} tokens but config.json vocab_size is ${parsed.config.vocabSize}`);
  }
  const weights = readHfWeights(folder, parsed);
  return {
    name: parsed.name ?? basename(resolve(folder)),
    source: folder,
    format: "safetensors",
    qkBasis: "rotate-half",
    weights,
    tokenizer,
  };
}
