// A GGUF file of one of llama.cpp's architectures "llama" (Llama 2/3.x, Mistral), "qwen2", "qwen3" and "gemma2"
// as a LoadedModel: config from the {arch}.* metadata, llama.cpp tensor names, tokenizer from tokenizer.ggml.*.
// llama.cpp's HF converter un-permutes Llama's q/k rows to the interleaved basis (LLAMA_ROPE_TYPE_NORM) and
// leaves Qwen's and Gemma's in rotate-half order (NEOX); the latter are brought to the canonical basis here.
import { basename } from "node:path";
import { ModelFormatError } from "../errors.ts";
import {
  configProblem,
  plainArchitecture,
  qDimOf,
  withArchitecture,
  type Architecture,
  type ArchitectureFamily,
  type ModelConfig,
} from "../model/config.ts";
import { unpermuteRotateHalfRows } from "../model/rope-basis.ts";
import type {
  LayerWeights,
  LoadedModel,
  ModelIdentity,
  ModelWeights,
  QkBasis,
  WeightMatrix,
} from "../model/weights.ts";
import { inferTokenTypes, sentencePieceTokenizer } from "../tokenizer/sentencepiece-bpe.ts";
import type { SentencePieceBpeTokenizer } from "../tokenizer/sentencepiece-bpe.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { byteLevelTokenizerJson, isPreTokenizerName, type ByteLevelBpeVocab } from "../tokenizer/byte-level-bpe.ts";
import { HfTokenizer } from "../tokenizer/hf-tokenizer.ts";
import { GgufReader, ggufArray, ggufNumber, ggufString } from "./gguf-read.ts";
import { GGUF_TENSOR } from "./gguf-types.ts";
import { refuseLayersBeyond } from "./layer-names.ts";
import { unpermuteMatrixRows } from "./weight-codec.ts";

/** The GGUF architectures the engine runs. */
export const GGUF_ARCHITECTURES: readonly ArchitectureFamily[] = ["llama", "qwen2", "qwen3", "gemma2"];

/** Architectures whose GGUF q/k rows are in rotate-half (NEOX) order, as in their Hugging Face checkpoints. */
const ROTATE_HALF_IN_FILE: readonly ArchitectureFamily[] = ["qwen2", "qwen3", "gemma2"];

/**
 * GGUF stores hyperparameters as float32; 1e-5 comes back as 9.99999974e-6. The shortest decimal that rounds
 * to the same float32 is the value the converter was given, and makes a GGUF config equal its source's.
 */
export function shortestFloat32(value: number): number {
  const target = Math.fround(value);
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(target.toPrecision(digits));
    if (Math.fround(candidate) === target) return candidate;
  }
  return target;
}

/** The architecture named by general.architecture, refused by name when the engine does not run it. */
export function ggufArchitecture(reader: GgufReader): ArchitectureFamily {
  const arch = ggufString(reader, "general.architecture");
  if (arch === undefined) throw new ModelFormatError(reader.path, "metadata general.architecture is missing");
  if (!(GGUF_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new ModelFormatError(
      reader.path,
      `general.architecture ${JSON.stringify(arch)} is not supported (only ${GGUF_ARCHITECTURES.map((a) => JSON.stringify(a)).join(", ")})`,
    );
  }
  return arch as ArchitectureFamily;
}

/** The model config a GGUF's metadata describes (vocab from the token list or the embedding). */
export function ggufConfig(reader: GgufReader): ModelConfig {
  const file = reader.path;
  const family = ggufArchitecture(reader);
  const key = (name: string): string => `${family}.${name}`;
  const fail = (problem: string): never => {
    throw new ModelFormatError(file, problem);
  };
  const required = (name: string): number => ggufNumber(reader, key(name)) ?? fail(`metadata ${key(name)} is missing`);
  const dim = required("embedding_length");
  const nHeads = required("attention.head_count");
  const headDim = ggufNumber(reader, key("attention.key_length")) ?? dim / nHeads;
  const valueLength = ggufNumber(reader, key("attention.value_length"));
  if (valueLength !== undefined && valueLength !== headDim)
    fail(`${key("attention.value_length")} ${valueLength} != key_length ${headDim} (not supported)`);
  const tokens = ggufArray(reader, "tokenizer.ggml.tokens");
  const embedding = reader.tensors.get(GGUF_TENSOR.tokenEmbedding);
  const nLayers = required("block_count");
  const base: Omit<ModelConfig, "arch"> = {
    dim,
    hiddenDim: required("feed_forward_length"),
    nLayers,
    nHeads,
    nKvHeads: ggufNumber(reader, key("attention.head_count_kv")) ?? nHeads,
    headDim,
    vocabSize: ggufNumber(reader, key("vocab_size")) ?? tokens?.length ?? embedding?.dims[1] ?? 0,
    maxSeqLen: required("context_length"),
    normEps: shortestFloat32(required("attention.layer_norm_rms_epsilon")),
    ropeTheta: shortestFloat32(ggufNumber(reader, key("rope.freq_base")) ?? 10000),
  };
  const ropeDims = ggufNumber(reader, key("rope.dimension_count"));
  if (ropeDims !== undefined && ropeDims !== headDim) {
    fail(`${key("rope.dimension_count")} ${ropeDims} != head size ${headDim} (partial RoPE is not supported)`);
  }
  const scaling = ggufString(reader, key("rope.scaling.type"));
  if (scaling !== undefined && scaling !== "none")
    fail(`${key("rope.scaling.type")} ${JSON.stringify(scaling)} is not supported`);
  const arch: Architecture = {
    ...plainArchitecture(base),
    family,
    ropeFreqFactors: ropeFreqFactors(reader, base.headDim),
  };
  if (family === "qwen2") arch.qkvBias = true;
  if (family === "qwen3") arch.qkNorm = true;
  if (family === "gemma2") {
    // llama.cpp's gemma2: GELU, sqrt(n_embd) embedding scale, soft-caps always (50 and 30 when absent), sliding
    // window (default 4096) on even layers, and the attention scale gemma_pytorch uses: 1/sqrt(n_embd / n_head)
    // for the 27B (46 layers), 1/sqrt(head size) otherwise, unless the file states it in attention.scale.
    arch.activation = "gelu-tanh";
    arch.postNorms = true;
    arch.embedScale = Math.fround(Math.sqrt(dim));
    arch.attnScale = Math.fround(
      ggufNumber(reader, key("attention.scale")) ?? 1 / Math.sqrt(nLayers === 46 ? dim / nHeads : headDim),
    );
    arch.attnSoftcap = shortestFloat32(ggufNumber(reader, key("attn_logit_softcapping")) ?? 50);
    arch.finalSoftcap = shortestFloat32(ggufNumber(reader, key("final_logit_softcapping")) ?? 30);
    const window = ggufNumber(reader, key("attention.sliding_window")) ?? 4096;
    arch.slidingWindows = Array.from({ length: nLayers }, (_, l) => (l % 2 === 0 ? window : 0));
  } else if (reader.metadata.has(key("attention.sliding_window"))) {
    fail(`${key("attention.sliding_window")} is not supported for ${family} (llama.cpp does not apply it either)`);
  }
  for (const name of ["attn_logit_softcapping", "final_logit_softcapping"]) {
    if (family !== "gemma2" && reader.metadata.has(key(name))) fail(`${key(name)} is not supported for ${family}`);
  }
  const config = withArchitecture(base, arch);
  const problem = configProblem(config);
  if (problem) fail(`bad ${family}.* metadata: ${problem}`);
  return config;
}

/** Llama 3's rope_freqs.weight: one divisor per RoPE pair. */
function ropeFreqFactors(reader: GgufReader, headDim: number): number[] | null {
  if (!reader.tensors.has(GGUF_TENSOR.ropeFreqs)) return null;
  return [...vector(reader, GGUF_TENSOR.ropeFreqs, headDim / 2)];
}

/**
 * The tokenizer in the metadata: tokenizer.ggml.model "llama" (SentencePiece BPE, llama2.c's algorithm) or
 * "gpt2" (byte-level BPE with merges, through @huggingface/tokenizers with the regex of tokenizer.ggml.pre).
 */
export function ggufModelTokenizer(reader: GgufReader): Tokenizer {
  const model = ggufString(reader, "tokenizer.ggml.model");
  if (model === undefined)
    throw new ModelFormatError(reader.path, "missing tokenizer: metadata tokenizer.ggml.model is absent");
  if (model === "llama") return ggufTokenizer(reader);
  if (model === "gpt2") return ggufByteLevelTokenizer(reader);
  throw new ModelFormatError(
    reader.path,
    `tokenizer.ggml.model ${JSON.stringify(model)} is not supported (only "llama", SentencePiece BPE, and "gpt2", byte-level BPE)`,
  );
}

function ggufTokens(reader: GgufReader): string[] {
  const tokens = ggufArray(reader, "tokenizer.ggml.tokens");
  if (tokens === undefined)
    throw new ModelFormatError(reader.path, "missing tokenizer: metadata tokenizer.ggml.tokens is absent");
  if (!tokens.every((t) => typeof t === "string"))
    throw new ModelFormatError(reader.path, "tokenizer.ggml.tokens holds non-strings");
  return tokens as string[];
}

function ggufNumbers(reader: GgufReader, key: string): number[] | undefined {
  const values = ggufArray(reader, key);
  if (values === undefined) return undefined;
  if (!values.every((v) => typeof v === "number")) throw new ModelFormatError(reader.path, `${key} holds non-numbers`);
  return values as number[];
}

function ggufBool(reader: GgufReader, key: string): boolean | undefined {
  const value = reader.metadata.get(key)?.value;
  if (value === undefined) return undefined;
  if (typeof value !== "boolean")
    throw new ModelFormatError(reader.path, `metadata ${key} should be a boolean, got ${JSON.stringify(value)}`);
  return value;
}

/**
 * The SentencePiece tokenizer in the metadata (tokenizer.ggml.model "llama"), with tokenizer.ggml.add_space_prefix
 * (Gemma's is false) and llama.cpp's end-of-generation tokens.
 */
export function ggufTokenizer(reader: GgufReader): SentencePieceBpeTokenizer {
  const pieces = ggufTokens(reader);
  const ids = {
    bosId: ggufNumber(reader, "tokenizer.ggml.bos_token_id") ?? 1,
    eosId: ggufNumber(reader, "tokenizer.ggml.eos_token_id") ?? 2,
    unkId: ggufNumber(reader, "tokenizer.ggml.unknown_token_id") ?? 0,
  };
  return sentencePieceTokenizer(
    {
      pieces,
      scores: ggufNumbers(reader, "tokenizer.ggml.scores") ?? pieces.map(() => 0),
      types: ggufNumbers(reader, "tokenizer.ggml.token_type") ?? inferTokenTypes(pieces, ids),
      ...ids,
    },
    reader.path,
    {
      addSpacePrefix: ggufBool(reader, "tokenizer.ggml.add_space_prefix") ?? true,
      eosIds: endOfGeneration(reader, pieces, ids.eosId),
    },
  );
}

/**
 * llama.cpp's end-of-generation tokens: eos, eot and eom ids, and the tokens whose text marks the end of a turn
 * in the chat formats it knows (llama-vocab.cpp).
 */
function endOfGeneration(reader: GgufReader, tokens: readonly string[], eosId: number): number[] {
  const eog = new Set<number>([eosId]);
  for (const key of ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]) {
    const id = ggufNumber(reader, key);
    if (id !== undefined && id >= 0 && id < tokens.length) eog.add(id);
  }
  tokens.forEach((token, id) => {
    if (END_OF_GENERATION_TEXTS.includes(token)) eog.add(id);
  });
  return [...eog];
}

/** Token texts llama.cpp treats as the end of a generation (llama-vocab.cpp). */
const END_OF_GENERATION_TEXTS = [
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "<|eom_id|>",
  "<EOT>",
  "_<EOT>",
  "<|end_of_text|>",
];

/** The byte-level vocabulary of a "gpt2" tokenizer, as the writer stores it. */
export function ggufByteLevelVocab(reader: GgufReader): ByteLevelBpeVocab {
  const file = reader.path;
  const tokens = ggufTokens(reader);
  const pre = ggufString(reader, "tokenizer.ggml.pre") ?? "default";
  if (!isPreTokenizerName(pre)) {
    throw new ModelFormatError(
      file,
      `tokenizer.ggml.pre ${JSON.stringify(pre)} is not supported (only "llama-bpe" and "qwen2")`,
    );
  }
  const merges = ggufArray(reader, "tokenizer.ggml.merges");
  if (merges === undefined)
    throw new ModelFormatError(file, "missing tokenizer: metadata tokenizer.ggml.merges is absent");
  const pairs = merges.map((m, i): [string, string] => {
    const parts = typeof m === "string" ? m.split(" ") : [];
    if (parts.length !== 2)
      throw new ModelFormatError(file, `tokenizer.ggml.merges[${i}] is not two tokens separated by a space`);
    return [parts[0], parts[1]];
  });
  const types = ggufNumbers(reader, "tokenizer.ggml.token_type") ?? tokens.map(() => 1);
  const bosId = ggufNumber(reader, "tokenizer.ggml.bos_token_id") ?? -1;
  const eosId = ggufNumber(reader, "tokenizer.ggml.eos_token_id");
  if (eosId === undefined) throw new ModelFormatError(file, "metadata tokenizer.ggml.eos_token_id is missing");
  for (const [label, id] of [
    ["bos", bosId],
    ["eos", eosId],
  ] as const) {
    if (id >= tokens.length || (label === "eos" && id < 0))
      throw new ModelFormatError(file, `tokenizer ${label} id ${id} outside the ${tokens.length} tokens`);
  }
  return {
    tokens,
    types,
    merges: pairs,
    pre,
    bosId,
    eosId,
    addBos: (ggufBool(reader, "tokenizer.ggml.add_bos_token") ?? pre === "llama-bpe") && bosId >= 0,
  };
}

function ggufByteLevelTokenizer(reader: GgufReader): HfTokenizer {
  const vocab = ggufByteLevelVocab(reader);
  return new HfTokenizer(byteLevelTokenizerJson(vocab, reader.path), {}, reader.path, {
    bosId: vocab.bosId >= 0 ? vocab.bosId : undefined,
    eosId: vocab.eosId,
    eosIds: endOfGeneration(reader, vocab.tokens, vocab.eosId),
    addBos: vocab.addBos,
  });
}

/** Checks a tensor's ggml dims against what the config implies. */
function checkDims(reader: GgufReader, name: string, dims: number[]): void {
  const info = reader.tensors.get(name);
  if (!info) throw new ModelFormatError(reader.path, `tensor ${name} is missing`);
  if (info.dims.length !== dims.length || info.dims.some((d, i) => d !== dims[i])) {
    throw new ModelFormatError(
      reader.path,
      `tensor ${name} has shape [${info.dims}], the config needs [${dims}] (ggml order, innermost first)`,
    );
  }
}

/** A 1-D tensor, as float32. */
function vector(reader: GgufReader, name: string, length: number): Float32Array {
  checkDims(reader, name, [length]);
  return reader.readTensor(name);
}

/** A matrix in the file's precision; ggml dims [in, out]. */
function matrix(reader: GgufReader, name: string, inDim: number, outDim: number): WeightMatrix {
  checkDims(reader, name, [inDim, outDim]);
  return reader.readMatrix(name);
}

/**
 * Canonical weights from an open GGUF. ggml's [in, out] dims are row-major [out, in]: no transpose. Norm
 * weights are used as stored (llama.cpp's converter already folded Gemma's 1 + w). A tensor the architecture
 * does not use is refused by name.
 */
export function ggufWeights(reader: GgufReader, config: ModelConfig): ModelWeights {
  const arch = config.arch ?? plainArchitecture(config);
  const { dim, hiddenDim, vocabSize, headDim } = config;
  const kvDim = config.nKvHeads * headDim;
  const qDim = qDimOf(config);
  const rotateHalf = ROTATE_HALF_IN_FILE.includes(arch.family);
  refuseLayersBeyond(reader.tensors.keys(), /^blk\.(\d+)\./, config.nLayers, reader.path, `${arch.family}.block_count`);
  const qk = (m: WeightMatrix, heads: number): WeightMatrix => (rotateHalf ? unpermuteMatrixRows(m, heads) : m);
  const qkVector = (v: Float32Array, heads: number): Float32Array =>
    rotateHalf ? unpermuteRotateHalfRows(v, heads, 1) : v;
  const tokenEmbedding = matrix(reader, GGUF_TENSOR.tokenEmbedding, dim, vocabSize);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const names = GGUF_TENSOR.layer(l);
    const extra = GGUF_TENSOR.layerVectors(l);
    const layer: LayerWeights = {
      attnNorm: vector(reader, names.attnNorm, dim),
      wq: qk(matrix(reader, names.wq, dim, qDim), config.nHeads),
      wk: qk(matrix(reader, names.wk, dim, kvDim), config.nKvHeads),
      wv: matrix(reader, names.wv, dim, kvDim),
      wo: matrix(reader, names.wo, qDim, dim),
      ffnNorm: vector(reader, names.ffnNorm, dim),
      wGate: matrix(reader, names.wGate, dim, hiddenDim),
      wUp: matrix(reader, names.wUp, dim, hiddenDim),
      wDown: matrix(reader, names.wDown, hiddenDim, dim),
    };
    if (arch.qkvBias) {
      layer.qBias = qkVector(vector(reader, extra.qBias, qDim), config.nHeads);
      layer.kBias = qkVector(vector(reader, extra.kBias, kvDim), config.nKvHeads);
      layer.vBias = vector(reader, extra.vBias, kvDim);
    }
    if (arch.qkNorm) {
      layer.qNorm = qkVector(vector(reader, extra.qNorm, headDim), 1);
      layer.kNorm = qkVector(vector(reader, extra.kNorm, headDim), 1);
    }
    if (arch.postNorms) {
      layer.attnPostNorm = vector(reader, extra.attnPostNorm, dim);
      layer.ffnPostNorm = vector(reader, extra.ffnPostNorm, dim);
    }
    layers.push(layer);
  }
  const finalNorm = vector(reader, GGUF_TENSOR.finalNorm, dim);
  let classifier = tokenEmbedding; // no output.weight: tied
  if (reader.tensors.has(GGUF_TENSOR.classifier)) {
    const separate = matrix(reader, GGUF_TENSOR.classifier, dim, vocabSize);
    // Some converters write a tied classifier out as a copy (stories260K.gguf does); share one matrix then.
    if (!sameMatrix(separate, tokenEmbedding)) classifier = separate;
  }
  const expected = new Set(tensorNamesOf(config, arch));
  const unused = [...reader.tensors.keys()].find((name) => !expected.has(name));
  if (unused !== undefined)
    throw new ModelFormatError(reader.path, `tensor ${unused} is not part of a ${arch.family} model (not supported)`);
  return { config, tokenEmbedding, layers, finalNorm, classifier };
}

/** Every tensor name a model of this config may have (output.weight and rope_freqs.weight included). */
function tensorNamesOf(config: ModelConfig, arch: Architecture): string[] {
  const names: string[] = [GGUF_TENSOR.tokenEmbedding, GGUF_TENSOR.finalNorm, GGUF_TENSOR.classifier];
  if (arch.ropeFreqFactors) names.push(GGUF_TENSOR.ropeFreqs);
  for (let l = 0; l < config.nLayers; l++) {
    names.push(...Object.values(GGUF_TENSOR.layer(l)));
    const extra = GGUF_TENSOR.layerVectors(l);
    if (arch.qkvBias) names.push(extra.qBias, extra.kBias, extra.vBias);
    if (arch.qkNorm) names.push(extra.qNorm, extra.kNorm);
    if (arch.postNorms) names.push(extra.attnPostNorm, extra.ffnPostNorm);
  }
  return names;
}

function sameMatrix(a: WeightMatrix, b: WeightMatrix): boolean {
  return a.dtype === b.dtype && a.rows === b.rows && a.cols === b.cols && Buffer.compare(a.data, b.data) === 0;
}

/**
 * The model's short name: general.name, unless it is empty or merely the architecture ("llama", as converters
 * often write), in which case the file's base name says more (stories260K.gguf -> "stories260K").
 */
function modelName(reader: GgufReader, file: string): string {
  const name = ggufString(reader, "general.name");
  const architecture = ggufString(reader, "general.architecture");
  return name && name !== architecture ? name : basename(file).replace(/\.gguf$/i, "");
}

/**
 * The q/k order of the model's PEFT adapters (model/weights.ts QkBasis). PEFT trains on Hugging Face
 * checkpoints, whose q/k rows are in rotate-half order, so adapters of every GGUF converted from one are too.
 * The exception is a llama2.c checkpoint converted by llama.cpp's convert-llama2c-to-ggml, whose adapters (the
 * demo ones of stories260K) were trained in llama2.c's interleaved basis: that converter writes no
 * general.file_type, which every other converter (convert_hf_to_gguf.py, this engine's writer) writes.
 */
function adapterQkBasis(reader: GgufReader, family: ArchitectureFamily): QkBasis {
  return family === "llama" && !reader.metadata.has("general.file_type") ? "interleaved" : "rotate-half";
}

/** The file's name, config and adapter q/k order, from its metadata alone. */
export function ggufModelIdentity(file: string): ModelIdentity {
  const reader = GgufReader.open(file);
  try {
    const config = ggufConfig(reader);
    return {
      name: modelName(reader, file),
      source: file,
      format: "gguf",
      qkBasis: adapterQkBasis(reader, ggufArchitecture(reader)),
      config,
    };
  } finally {
    reader.close();
  }
}

/** A GGUF model file into a LoadedModel. */
export function loadGgufModel(file: string): LoadedModel {
  const reader = GgufReader.open(file);
  try {
    const config = ggufConfig(reader);
    const tokenizer = ggufModelTokenizer(reader);
    if (tokenizer.vocabSize > config.vocabSize) {
      throw new ModelFormatError(
        file,
        `tokenizer has ${tokenizer.vocabSize} tokens but the model only ${config.vocabSize} embeddings`,
      );
    }
    const weights = ggufWeights(reader, config);
    return {
      name: modelName(reader, file),
      source: file,
      format: "gguf",
      qkBasis: adapterQkBasis(reader, ggufArchitecture(reader)),
      weights,
      tokenizer,
    };
  } finally {
    reader.close();
  }
}
