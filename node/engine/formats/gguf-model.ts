// A GGUF "llama" file as a LoadedModel: config from llama.* metadata, llama.cpp tensor names, tokenizer from
// tokenizer.ggml.* metadata. llama.cpp's converters store q/k in the interleaved basis, so nothing is permuted.
import { basename } from "node:path";
import { ModelFormatError } from "../errors.ts";
import { configProblem } from "../model/config.ts";
import type { ModelConfig } from "../model/config.ts";
import type { LayerWeights, LoadedModel, ModelWeights, WeightMatrix } from "../model/weights.ts";
import { inferTokenTypes, sentencePieceTokenizer } from "../tokenizer/sentencepiece-bpe.ts";
import type { SentencePieceBpeTokenizer } from "../tokenizer/sentencepiece-bpe.ts";
import { GgufReader, ggufArray, ggufNumber, ggufString } from "./gguf-read.ts";
import { GGUF_TENSOR } from "./gguf-types.ts";

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

/** The model config a GGUF's metadata describes (vocab from the token list or the embedding). */
export function ggufConfig(reader: GgufReader): ModelConfig {
  const file = reader.path;
  const arch = ggufString(reader, "general.architecture");
  if (arch === undefined) throw new ModelFormatError(file, "metadata general.architecture is missing");
  if (arch !== "llama") throw new ModelFormatError(file, `architecture ${JSON.stringify(arch)} is not supported (only "llama")`);
  const required = (key: string): number => {
    const value = ggufNumber(reader, `llama.${key}`);
    if (value === undefined) throw new ModelFormatError(file, `metadata llama.${key} is missing`);
    return value;
  };
  const dim = required("embedding_length");
  const nHeads = required("attention.head_count");
  const tokens = ggufArray(reader, "tokenizer.ggml.tokens");
  const embedding = reader.tensors.get(GGUF_TENSOR.tokenEmbedding);
  const vocabSize = ggufNumber(reader, "llama.vocab_size") ?? tokens?.length ?? embedding?.dims[1] ?? 0;
  const config: ModelConfig = {
    dim,
    hiddenDim: required("feed_forward_length"),
    nLayers: required("block_count"),
    nHeads,
    nKvHeads: ggufNumber(reader, "llama.attention.head_count_kv") ?? nHeads,
    headDim: dim / nHeads,
    vocabSize,
    maxSeqLen: required("context_length"),
    normEps: shortestFloat32(required("attention.layer_norm_rms_epsilon")),
    ropeTheta: shortestFloat32(ggufNumber(reader, "llama.rope.freq_base") ?? 10000),
  };
  const problem = configProblem(config);
  if (problem) throw new ModelFormatError(file, `bad llama.* metadata: ${problem}`);
  const ropeDims = ggufNumber(reader, "llama.rope.dimension_count");
  if (ropeDims !== undefined && ropeDims !== config.headDim) {
    throw new ModelFormatError(file, `llama.rope.dimension_count ${ropeDims} != head size ${config.headDim} (partial RoPE is not supported)`);
  }
  if (reader.metadata.has("llama.rope.scaling.type") && ggufString(reader, "llama.rope.scaling.type") !== "none") {
    throw new ModelFormatError(file, `RoPE scaling ${ggufString(reader, "llama.rope.scaling.type")} is not supported`);
  }
  return config;
}

/** The SentencePiece tokenizer in the metadata (tokenizer.ggml.model "llama"). */
export function ggufTokenizer(reader: GgufReader): SentencePieceBpeTokenizer {
  const file = reader.path;
  const model = ggufString(reader, "tokenizer.ggml.model");
  if (model === undefined) throw new ModelFormatError(file, "missing tokenizer: metadata tokenizer.ggml.model is absent");
  if (model !== "llama") {
    throw new ModelFormatError(file, `tokenizer.ggml.model ${JSON.stringify(model)} is not supported (only "llama", SentencePiece BPE)`);
  }
  const tokens = ggufArray(reader, "tokenizer.ggml.tokens");
  if (tokens === undefined) throw new ModelFormatError(file, "missing tokenizer: metadata tokenizer.ggml.tokens is absent");
  if (!tokens.every((t) => typeof t === "string")) throw new ModelFormatError(file, "tokenizer.ggml.tokens holds non-strings");
  const pieces = tokens as string[];
  const numbers = (key: string): number[] | undefined => {
    const values = ggufArray(reader, key);
    if (values === undefined) return undefined;
    if (!values.every((v) => typeof v === "number")) throw new ModelFormatError(file, `${key} holds non-numbers`);
    return values as number[];
  };
  const ids = {
    bosId: ggufNumber(reader, "tokenizer.ggml.bos_token_id") ?? 1,
    eosId: ggufNumber(reader, "tokenizer.ggml.eos_token_id") ?? 2,
    unkId: ggufNumber(reader, "tokenizer.ggml.unknown_token_id") ?? 0,
  };
  return sentencePieceTokenizer(
    {
      pieces,
      scores: numbers("tokenizer.ggml.scores") ?? pieces.map(() => 0),
      types: numbers("tokenizer.ggml.token_type") ?? inferTokenTypes(pieces, ids),
      ...ids,
    },
    file,
  );
}

/** Checks a tensor's ggml dims against what the config implies. */
function checkDims(reader: GgufReader, name: string, dims: number[]): void {
  const info = reader.tensors.get(name);
  if (!info) throw new ModelFormatError(reader.path, `tensor ${name} is missing`);
  if (info.dims.length !== dims.length || info.dims.some((d, i) => d !== dims[i])) {
    throw new ModelFormatError(reader.path, `tensor ${name} has shape [${info.dims}], the config needs [${dims}] (ggml order, innermost first)`);
  }
}

/** A norm vector, as float32. */
function vector(reader: GgufReader, name: string, length: number): Float32Array {
  checkDims(reader, name, [length]);
  return reader.readTensor(name);
}

/** A matrix in the file's precision; ggml dims [in, out]. */
function matrix(reader: GgufReader, name: string, inDim: number, outDim: number): WeightMatrix {
  checkDims(reader, name, [inDim, outDim]);
  return reader.readMatrix(name);
}

/** Canonical weights from an open GGUF. ggml's [in, out] dims are row-major [out, in]: no transpose. */
export function ggufWeights(reader: GgufReader, config: ModelConfig): ModelWeights {
  const { dim, hiddenDim, vocabSize } = config;
  const kvDim = config.nKvHeads * config.headDim;
  const tokenEmbedding = matrix(reader, GGUF_TENSOR.tokenEmbedding, dim, vocabSize);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const names = GGUF_TENSOR.layer(l);
    layers.push({
      attnNorm: vector(reader, names.attnNorm, dim),
      wq: matrix(reader, names.wq, dim, dim),
      wk: matrix(reader, names.wk, dim, kvDim),
      wv: matrix(reader, names.wv, dim, kvDim),
      wo: matrix(reader, names.wo, dim, dim),
      ffnNorm: vector(reader, names.ffnNorm, dim),
      wGate: matrix(reader, names.wGate, dim, hiddenDim),
      wUp: matrix(reader, names.wUp, dim, hiddenDim),
      wDown: matrix(reader, names.wDown, hiddenDim, dim),
    });
  }
  const finalNorm = vector(reader, GGUF_TENSOR.finalNorm, dim);
  let classifier = tokenEmbedding; // no output.weight: tied
  if (reader.tensors.has(GGUF_TENSOR.classifier)) {
    const separate = matrix(reader, GGUF_TENSOR.classifier, dim, vocabSize);
    // Some converters write a tied classifier out as a copy (stories260K.gguf does); share one matrix then.
    if (!sameMatrix(separate, tokenEmbedding)) classifier = separate;
  }
  return { config, tokenEmbedding, layers, finalNorm, classifier };
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

/** A GGUF llama model file into a LoadedModel. */
export function loadGgufModel(file: string): LoadedModel {
  const reader = GgufReader.open(file);
  try {
    const config = ggufConfig(reader);
    const tokenizer = ggufTokenizer(reader);
    if (tokenizer.vocabSize > config.vocabSize) {
      throw new ModelFormatError(file, `tokenizer has ${tokenizer.vocabSize} tokens but the model only ${config.vocabSize} embeddings`);
    }
    const weights = ggufWeights(reader, config);
    return {
      name: modelName(reader, file),
      source: file,
      format: "gguf",
      qkBasis: "interleaved",
      weights,
      tokenizer,
    };
  } finally {
    reader.close();
  }
}
