// A Hugging Face causal-LM folder (Llama, Mistral, Qwen2, Qwen3, Gemma 2): config.json (hf-config.ts),
// model.safetensors (or shards + index), tokenizer.json, and generation_config.json's EOS ids when present.
import { existsSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { ModelFormatError } from "../errors.ts";
import { architectureOf, qDimOf } from "../model/config.ts";
import { unpermuteRotateHalfRows } from "../model/rope-basis.ts";
import type { LayerWeights, LoadedModel, ModelIdentity, ModelWeights, WeightMatrix } from "../model/weights.ts";
import { loadHfTokenizer } from "../tokenizer/hf-tokenizer.ts";
import { eosIdsOf, parseHfConfig, type HfModelConfig } from "./hf-config.ts";
import { SafetensorsFile } from "./safetensors.ts";
import { refuseLayersBeyond } from "./layer-names.ts";
import { unpermuteMatrixRows } from "./weight-codec.ts";

function readJsonFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ModelFormatError(
      path,
      `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ModelFormatError(path, `not valid JSON (${(error as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new ModelFormatError(path, "not a JSON object");
  return value as Record<string, unknown>;
}

/** Which safetensors file holds each tensor, and every tensor name the folder has. */
interface WeightFiles {
  shardOf: (key: string) => string | undefined;
  /** Every tensor of the index (or of model.safetensors, read when asked). */
  names: () => string[];
  describe: string;
}

function weightFiles(folder: string): WeightFiles {
  const indexPath = join(folder, "model.safetensors.index.json");
  if (existsSync(indexPath)) {
    const index = readJsonFile(indexPath);
    const map = index.weight_map;
    if (typeof map !== "object" || map === null || Array.isArray(map))
      throw new ModelFormatError(indexPath, "weight_map is missing or not an object");
    const entries = map as Record<string, unknown>;
    for (const [key, shard] of Object.entries(entries)) {
      if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\")) {
        throw new ModelFormatError(
          indexPath,
          `weight_map[${key}] is not a file name in the folder: ${JSON.stringify(shard)}`,
        );
      }
    }
    return {
      shardOf: (key) => (entries[key] === undefined ? undefined : join(folder, entries[key] as string)),
      names: () => Object.keys(entries),
      describe: indexPath,
    };
  }
  const single = join(folder, "model.safetensors");
  if (existsSync(single)) return { shardOf: () => single, names: () => [], describe: single };
  const hint = existsSync(join(folder, "pytorch_model.bin"))
    ? " (pytorch_model.bin is not read; convert it to safetensors)"
    : "";
  throw new ModelFormatError(
    folder,
    `no weights: looked for model.safetensors and model.safetensors.index.json${hint}`,
  );
}

/** Tensors every checkpoint may carry that the engine has no use for: RoPE's cached inverse frequencies. */
const IGNORED_TENSOR = /\.rotary_emb\.inv_freq$/;

/**
 * Canonical weights from the safetensors of a folder: q/k rows (and their biases and norm weights) go from
 * rotate-half back to interleaved, Gemma's norm weights w become 1 + w. A tensor the architecture does not use
 * is refused by name (an o_proj bias, say, would otherwise be silently dropped).
 */
export function readHfWeights(folder: string, parsed: HfModelConfig): ModelWeights {
  const { config } = parsed;
  const arch = architectureOf(config);
  const { dim, hiddenDim, vocabSize, headDim } = config;
  const kvDim = config.nKvHeads * headDim;
  const qDim = qDimOf(config);
  const files = weightFiles(folder);
  const open = new Map<string, SafetensorsFile>();
  const used = new Set<string>();
  try {
    const shardFile = (shard: string): SafetensorsFile => {
      let file = open.get(shard);
      if (!file) {
        file = SafetensorsFile.open(shard);
        open.set(shard, file);
      }
      return file;
    };
    // Every name from the index (or the single file's header) before any weight is read.
    const names = files.names().length > 0 ? files.names() : [...shardFile(files.describe).tensors.keys()];
    refuseLayersBeyond(names, /^model\.layers\.(\d+)\./, config.nLayers, files.describe, "num_hidden_layers");
    const entryOf = (key: string, shape: number[]): SafetensorsFile => {
      const shard = files.shardOf(key);
      if (shard === undefined)
        throw new ModelFormatError(files.describe, `tensor ${key} is missing from the weight_map`);
      const file = shardFile(shard);
      const entry = file.tensors.get(key);
      if (!entry) throw new ModelFormatError(shard, `tensor ${key} is missing`);
      if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
        throw new ModelFormatError(shard, `tensor ${key} has shape [${entry.shape}], config.json implies [${shape}]`);
      }
      used.add(key);
      return file;
    };
    // Gemma's RMSNorm multiplies by (1 + weight), in float32: folded here, as llama.cpp's converter does.
    const norm = (key: string, length: number): Float32Array => {
      const w = entryOf(key, [length]).read(key);
      return arch.family === "gemma2" ? w.map((x) => 1 + x) : w;
    };
    const vector = (key: string, length: number): Float32Array => entryOf(key, [length]).read(key);
    const matrix = (key: string, rows: number, cols: number): WeightMatrix =>
      entryOf(key, [rows, cols]).readMatrix(key);
    const tokenEmbedding = matrix("model.embed_tokens.weight", vocabSize, dim);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < config.nLayers; l++) {
      const p = `model.layers.${l}`;
      const layer: LayerWeights = {
        attnNorm: norm(`${p}.input_layernorm.weight`, dim),
        wq: unpermuteMatrixRows(matrix(`${p}.self_attn.q_proj.weight`, qDim, dim), config.nHeads),
        wk: unpermuteMatrixRows(matrix(`${p}.self_attn.k_proj.weight`, kvDim, dim), config.nKvHeads),
        wv: matrix(`${p}.self_attn.v_proj.weight`, kvDim, dim),
        wo: matrix(`${p}.self_attn.o_proj.weight`, dim, qDim),
        // Gemma 2 names its norm before the MLP pre_feedforward_layernorm; post_attention_layernorm is the norm
        // of the attention output there, but the pre-MLP norm in Llama, Mistral and Qwen.
        ffnNorm: norm(`${p}.${arch.postNorms ? "pre_feedforward_layernorm" : "post_attention_layernorm"}.weight`, dim),
        wGate: matrix(`${p}.mlp.gate_proj.weight`, hiddenDim, dim),
        wUp: matrix(`${p}.mlp.up_proj.weight`, hiddenDim, dim),
        wDown: matrix(`${p}.mlp.down_proj.weight`, dim, hiddenDim),
      };
      if (arch.qkvBias) {
        layer.qBias = unpermuteRotateHalfRows(vector(`${p}.self_attn.q_proj.bias`, qDim), config.nHeads, 1);
        layer.kBias = unpermuteRotateHalfRows(vector(`${p}.self_attn.k_proj.bias`, kvDim), config.nKvHeads, 1);
        layer.vBias = vector(`${p}.self_attn.v_proj.bias`, kvDim);
      }
      if (arch.qkNorm) {
        layer.qNorm = unpermuteRotateHalfRows(vector(`${p}.self_attn.q_norm.weight`, headDim), 1, 1);
        layer.kNorm = unpermuteRotateHalfRows(vector(`${p}.self_attn.k_norm.weight`, headDim), 1, 1);
      }
      if (arch.postNorms) {
        layer.attnPostNorm = norm(`${p}.post_attention_layernorm.weight`, dim);
        layer.ffnPostNorm = norm(`${p}.post_feedforward_layernorm.weight`, dim);
      }
      layers.push(layer);
    }
    const finalNorm = norm("model.norm.weight", dim);
    // Tied: transformers ties lm_head to the embedding, whatever lm_head.weight the files hold.
    const classifier = parsed.tiedClassifier ? tokenEmbedding : matrix("lm_head.weight", vocabSize, dim);
    if (parsed.tiedClassifier) used.add("lm_head.weight");
    const unused = names.find((name) => !used.has(name) && !IGNORED_TENSOR.test(name));
    if (unused !== undefined) {
      throw new ModelFormatError(
        files.describe,
        `tensor ${unused} is not part of a ${parsed.architecture} as config.json describes it (not supported)`,
      );
    }
    return { config, tokenEmbedding, layers, finalNorm, classifier };
  } finally {
    for (const file of open.values()) file.close();
  }
}

/**
 * The ids that end a generation: generation_config.json's eos_token_id (Llama 3 Instruct lists several), as
 * transformers' generate() stops on them; else config.json's.
 */
function generationEosIds(folder: string, parsed: HfModelConfig): number[] {
  const path = join(folder, "generation_config.json");
  if (existsSync(path)) {
    const ids = eosIdsOf(readJsonFile(path).eos_token_id);
    if (ids.length > 0) return ids;
  }
  return parsed.eosIds;
}

function readHfConfig(folder: string): HfModelConfig {
  const configPath = join(folder, "config.json");
  if (!existsSync(configPath)) throw new ModelFormatError(folder, "not a Hugging Face model folder: no config.json");
  return parseHfConfig(readJsonFile(configPath), configPath);
}

/** The folder's name, config and adapter q/k order, from config.json alone. */
export function hfModelIdentity(folder: string): ModelIdentity {
  const parsed = readHfConfig(folder);
  return {
    name: hfName(parsed, folder),
    source: folder,
    format: "safetensors",
    qkBasis: "rotate-half",
    config: parsed.config,
  };
}

/** config.json's _name_or_path, else the folder's name. */
function hfName(parsed: HfModelConfig, folder: string): string {
  return parsed.name ?? basename(resolve(folder));
}

/** A Hugging Face folder into a LoadedModel (qkBasis "rotate-half": its adapters need the same un-permute). */
export function loadHfModel(folder: string): LoadedModel {
  const parsed = readHfConfig(folder);
  const tokenizer = loadHfTokenizer(folder, { bosId: parsed.bosId, eosIds: generationEosIds(folder, parsed) });
  if (tokenizer.vocabSize > parsed.config.vocabSize) {
    throw new ModelFormatError(
      join(folder, "tokenizer.json"),
      `tokenizer has ${tokenizer.vocabSize} tokens but config.json vocab_size is ${parsed.config.vocabSize}`,
    );
  }
  const weights = readHfWeights(folder, parsed);
  return {
    name: hfName(parsed, folder),
    source: folder,
    format: "safetensors",
    qkBasis: "rotate-half",
    weights,
    tokenizer,
  };
}
