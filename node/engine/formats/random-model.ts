// Random models of real shapes for benchmarks (`openlora model new`): no model hub is reachable here, so
// bigger backbones are generated. Deterministic per (seed, tensor name), so a tensor can be regenerated alone.
import type { ModelConfig } from "../model/config.ts";
import { architectureOf, configProblem, qDimOf } from "../model/config.ts";
import {
  LAYER_VECTOR_KEYS,
  type LayerWeights,
  type ModelWeights,
  type WeightDType,
  type WeightMatrix,
} from "../model/weights.ts";
import { TOKEN_TYPE } from "../tokenizer/sentencepiece-bpe.ts";
import type { SentencePieceVocab } from "../tokenizer/sentencepiece-bpe.ts";
import { GGUF_TENSOR } from "./gguf-types.ts";
import type { GgufModelInput } from "./gguf-write.ts";
import { llamaTensorLayout } from "./gguf-write.ts";
import { float32Matrix, quantizeMatrix } from "./weight-codec.ts";

export interface RandomModelOptions {
  /** Share the classifier with the token embedding (default true, as Llama 3.2 1B does). */
  tiedClassifier?: boolean;
  /** Standard deviation of matrix entries (default 0.02, GPT-2's init): activations stay finite. */
  scale?: number;
  /**
   * Spread of the vectors around their neutral values (default 0: norm weights are ones, biases zeros). Random
   * norms and biases make a test see a permuted or misplaced vector, which ones and zeros would hide.
   */
  vectorScale?: number;
}

/**
 * 65536 standard normal samples from a fixed seed. Box-Muller costs ~30 ns a value in JS, a billion-parameter
 * model would take half a minute; one xorshift step and a lookup in this table is ~2 ns.
 */
let normalTable: Float32Array | undefined;
function normals(): Float32Array {
  if (!normalTable) {
    normalTable = new Float32Array(65536);
    const next = mulberry32(0x5eed);
    for (let i = 0; i < normalTable.length; i += 2) {
      const u = 1 - next();
      const v = next();
      const r = Math.sqrt(-2 * Math.log(u));
      normalTable[i] = r * Math.cos(2 * Math.PI * v);
      normalTable[i + 1] = r * Math.sin(2 * Math.PI * v);
    }
  }
  return normalTable;
}

/** A small seeded PRNG with uniform output in [0, 1). */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of the tensor name mixed with the seed: each tensor gets its own stream. Never 0 (xorshift's fixpoint). */
function tensorSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ Math.imul(seed | 0, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h || 1;
}

/**
 * One tensor of a random model by its llama.cpp name: matrices N(0, scale^2); norm weights 1 + N(0,
 * vectorScale^2) and biases N(0, vectorScale^2) (ones and zeros by default); rope_freqs the config's factors.
 */
export function randomTensor(
  config: ModelConfig,
  seed: number,
  name: string,
  scale = 0.02,
  vectorScale = 0,
): Float32Array {
  const entry = llamaTensorLayout(config, false).find((t) => t.name === name);
  if (!entry) throw new RangeError(`a model of this config has no tensor ${name}`);
  if (name === GGUF_TENSOR.ropeFreqs) return Float32Array.from(architectureOf(config).ropeFreqFactors!);
  const length = entry.dims.reduce((a, b) => a * b, 1);
  const vector = entry.dims.length === 1;
  if (vector && vectorScale === 0) return new Float32Array(length).fill(name.endsWith(".bias") ? 0 : 1);
  const out = new Float32Array(length);
  const spread = vector ? vectorScale : scale;
  const offset = vector && !name.endsWith(".bias") ? 1 : 0;
  const table = normals();
  let x = tensorSeed(seed, name);
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = offset + table[x & 0xffff] * spread;
  }
  return out;
}

/** Characters every synthetic vocabulary holds as pieces, so that English prompts tokenize without bytes. */
const BASE_CHARS = "\u2581etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLUCMFWYPVBGKJQXZ0123456789.,!?'\"-:;()";

/**
 * A SentencePiece-style vocabulary of exactly vocabSize tokens: <unk>, <s>, </s>, the 256 byte tokens, the base
 * characters, then pieces each made of two earlier pieces (so BPE can reach them), scored in creation order.
 */
export function randomVocab(vocabSize: number, seed: number): SentencePieceVocab {
  if (!Number.isInteger(vocabSize) || vocabSize < 260)
    throw new RangeError(`a synthetic vocabulary needs at least 260 tokens, got ${vocabSize}`);
  const pieces = ["<unk>", "<s>", "</s>"];
  const types: number[] = [TOKEN_TYPE.unknown, TOKEN_TYPE.control, TOKEN_TYPE.control];
  for (let b = 0; b < 256; b++) {
    pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TOKEN_TYPE.byte);
  }
  const scores: number[] = pieces.map(() => 0);
  const seen = new Set<string>();
  const text: string[] = [];
  const add = (piece: string, score: number): void => {
    seen.add(piece);
    text.push(piece);
    pieces.push(piece);
    types.push(TOKEN_TYPE.normal);
    scores.push(score);
  };
  for (const ch of BASE_CHARS) {
    if (pieces.length >= vocabSize) break;
    add(ch, -1e6); // single characters never come from a merge; their score is never consulted
  }
  const next = mulberry32(seed ^ 0x70c3);
  // Word-like growth: a lowercase piece ("▁th", "ing") extended by a letter drawn with an English-like skew
  // (BASE_CHARS lists them by frequency), now and then any two pieces. Every piece is two earlier ones.
  const words = text.filter((p) => /^\u2581?[a-z]*$/.test(p));
  let merges = 0;
  for (let attempts = 0; pieces.length < vocabSize; attempts++) {
    if (attempts > 100 * vocabSize) throw new Error(`could not generate ${vocabSize} distinct pieces`);
    const u = next();
    const left = u < 0.9 ? words[Math.floor(next() * next() * words.length)] : text[Math.floor(next() * text.length)];
    const right =
      u < 0.9 ? text[1 + Math.floor(next() * next() * 26)] : text[1 + Math.floor(next() * (text.length - 1))];
    const piece = left + right;
    if (right.startsWith("\u2581") || piece.length > 16 || seen.has(piece)) continue;
    add(piece, -merges++);
    if (/^\u2581?[a-z]+$/.test(piece)) words.push(piece);
  }
  return { pieces, scores, types, bosId: 1, eosId: 2, unkId: 0 };
}

/**
 * A random model as a GgufModelInput: tensors are generated when the GGUF writer asks for them and dropped
 * after, so a 1B-parameter model is written with one tensor in memory at a time.
 */
export function randomModelInput(
  config: ModelConfig,
  seed: number,
  options: RandomModelOptions = {},
  name = "random",
): GgufModelInput & { vocab: SentencePieceVocab } {
  const problem = configProblem(config);
  if (problem) throw new RangeError(`random model: ${problem}`);
  const tiedClassifier = options.tiedClassifier ?? true;
  return {
    name,
    config,
    vocab: randomVocab(config.vocabSize, seed),
    tiedClassifier,
    tensor: (tensorName) => randomTensor(config, seed, tensorName, options.scale, options.vectorScale),
  };
}

/**
 * A random model in memory: canonical weights and its synthetic vocabulary (same values as randomModelInput),
 * every matrix f32, or stored as `dtype` (quantized from those values) when given.
 */
export function randomModel(
  config: ModelConfig,
  seed: number,
  options: RandomModelOptions = {},
  dtype: WeightDType = "f32",
): { weights: ModelWeights; vocab: SentencePieceVocab } {
  const input = randomModelInput(config, seed, options);
  return { weights: inputWeights(input, dtype), vocab: input.vocab };
}

/** A GgufModelInput's tensors as canonical weights in memory: matrices f32, or stored as `dtype` when given. */
export function inputWeights(input: GgufModelInput, dtype: WeightDType = "f32"): ModelWeights {
  const { config } = input;
  const kvDim = config.nKvHeads * config.headDim;
  const qDim = qDimOf(config);
  const { dim, hiddenDim } = config;
  const arch = architectureOf(config);
  const matrix = (name: string, rows: number, cols: number): WeightMatrix => {
    const values = input.tensor(name);
    return dtype === "f32" ? float32Matrix(rows, cols, values) : quantizeMatrix(values, rows, cols, dtype);
  };
  const tokenEmbedding = matrix(GGUF_TENSOR.tokenEmbedding, config.vocabSize, dim);
  const layers = Array.from({ length: config.nLayers }, (_, l): LayerWeights => {
    const n = GGUF_TENSOR.layer(l);
    const layer: LayerWeights = {
      attnNorm: input.tensor(n.attnNorm),
      wq: matrix(n.wq, qDim, dim),
      wk: matrix(n.wk, kvDim, dim),
      wv: matrix(n.wv, kvDim, dim),
      wo: matrix(n.wo, dim, qDim),
      ffnNorm: input.tensor(n.ffnNorm),
      wGate: matrix(n.wGate, hiddenDim, dim),
      wUp: matrix(n.wUp, hiddenDim, dim),
      wDown: matrix(n.wDown, dim, hiddenDim),
    };
    const extra = GGUF_TENSOR.layerVectors(l);
    const present = {
      qBias: arch.qkvBias,
      kBias: arch.qkvBias,
      vBias: arch.qkvBias,
      qNorm: arch.qkNorm,
      kNorm: arch.qkNorm,
      attnPostNorm: arch.postNorms,
      ffnPostNorm: arch.postNorms,
    };
    for (const key of LAYER_VECTOR_KEYS) if (present[key]) layer[key] = input.tensor(extra[key]);
    return layer;
  });
  const weights: ModelWeights = {
    config,
    tokenEmbedding,
    layers,
    finalNorm: input.tensor(GGUF_TENSOR.finalNorm),
    classifier: input.tiedClassifier ? tokenEmbedding : matrix(GGUF_TENSOR.classifier, config.vocabSize, dim),
  };
  return weights;
}
