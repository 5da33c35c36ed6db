import type { ModelConfig } from "./config.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/** How a matrix is stored: float32, half, bfloat16, or one of ggml's block quantizations (see weight-codec.ts). */
export type WeightDType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0" | "q4_k" | "q6_k";

/**
 * A row-major [rows, cols] = [out, in] matrix in its file's precision: each row is cols / blockElements blocks
 * of the dtype's layout, rows back to back in `data`. Nothing widens it to float32 on load; backends that
 * compute in float32 take formats/weight-codec.ts's float32Weights view.
 */
export interface WeightMatrix {
  readonly dtype: WeightDType;
  readonly rows: number;
  readonly cols: number;
  readonly data: Uint8Array;
}

/**
 * The vectors some architectures add to a block (model/config.ts Architecture says which), float32, in the
 * canonical basis: q/k biases and q/k norm weights follow the q/k rows' order. Norm weights are the factors the
 * norm multiplies by: Gemma's (1 + w) is folded in on load, as llama.cpp's converter does.
 */
export interface LayerVectors {
  qBias?: Float32Array; // [qDim]    (qkvBias)
  kBias?: Float32Array; // [kvDim]
  vBias?: Float32Array; // [kvDim]
  qNorm?: Float32Array; // [headDim] (qkNorm)
  kNorm?: Float32Array; // [headDim]
  attnPostNorm?: Float32Array; // [dim] (postNorms: Gemma 2's post_attention_layernorm)
  ffnPostNorm?: Float32Array; // [dim]  (post_feedforward_layernorm)
}

/** The optional vectors of LayerVectors, for code that walks them. */
export const LAYER_VECTOR_KEYS = ["qBias", "kBias", "vBias", "qNorm", "kNorm", "attnPostNorm", "ffnPostNorm"] as const;

/**
 * One transformer block in the canonical basis: every matrix row-major [out, in], and q/k rows in llama2.c's
 * order (RoPE rotates the interleaved pairs (2i, 2i+1) of each head). Norm vectors are always float32.
 * qDim = nHeads x headDim, which is dim except where the config gives head_dim (Qwen3, Gemma 2).
 */
export interface LayerWeights extends LayerVectors {
  attnNorm: Float32Array; // [dim]      (Gemma 2: input_layernorm)
  wq: WeightMatrix; // [qDim, dim]
  wk: WeightMatrix; // [kvDim, dim]
  wv: WeightMatrix; // [kvDim, dim]
  wo: WeightMatrix; // [dim, qDim]
  ffnNorm: Float32Array; // [dim]       (Gemma 2: pre_feedforward_layernorm)
  wGate: WeightMatrix; // [hidden, dim]  (llama2.c w1)
  wUp: WeightMatrix; // [hidden, dim]    (llama2.c w3)
  wDown: WeightMatrix; // [dim, hidden]  (llama2.c w2)
}

/** The keys of a block's seven matrices. */
export type LayerMatrixKey = "wq" | "wk" | "wv" | "wo" | "wGate" | "wUp" | "wDown";

/** All weights of a model in the canonical basis, in the file's precision. Every loader produces exactly this. */
export interface ModelWeights {
  config: ModelConfig;
  tokenEmbedding: WeightMatrix; // [vocab, dim]
  layers: LayerWeights[];
  finalNorm: Float32Array; // [dim]
  /** [vocab, dim]; the same object as tokenEmbedding when the classifier is tied. */
  classifier: WeightMatrix;
}

/** The same model with every matrix as float32 (the view float32Weights gives). */
export interface Float32LayerWeights extends LayerVectors {
  attnNorm: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  ffnNorm: Float32Array;
  wGate: Float32Array;
  wUp: Float32Array;
  wDown: Float32Array;
}

export interface Float32ModelWeights {
  config: ModelConfig;
  tokenEmbedding: Float32Array;
  layers: Float32LayerWeights[];
  finalNorm: Float32Array;
  /** The same array as tokenEmbedding when the classifier is tied. */
  classifier: Float32Array;
}

/**
 * The q/k row order of a model's PEFT adapters. Hugging Face checkpoints keep q/k rows in "rotate half" order
 * (Llama's converter permutes Meta's weights into it; Qwen and Gemma are trained in it), so every adapter PEFT
 * trained on them has lora_B rows in that order; loaders bring the base weights to the canonical order and the
 * adapter loader does the same to lora_B. Only models born in llama2.c's basis (llama2.c checkpoints and their
 * GGUF conversions, with the demo adapters trained on them) have "interleaved" adapters.
 */
export type QkBasis = "interleaved" | "rotate-half";

/**
 * What an adapter is checked against and encoded for, read from a model's headers without its weights: its name,
 * shape and architecture, and the q/k order of its adapters.
 */
export interface ModelIdentity {
  name: string;
  source: string;
  format: LoadedModel["format"];
  qkBasis: QkBasis;
  config: ModelConfig;
}

/** A model ready to run: canonical weights, its tokenizer and where it came from. */
export interface LoadedModel {
  /** Short name: GGUF general.name, HF _name_or_path, or the file's base name ("stories260K"). */
  name: string;
  /** The file or folder it was loaded from. */
  source: string;
  /** "llama2c" | "gguf" | "safetensors". */
  format: "llama2c" | "gguf" | "safetensors";
  /** The q/k row order of this model's PEFT adapters (see QkBasis). */
  qkBasis: QkBasis;
  weights: ModelWeights;
  tokenizer: Tokenizer;
}
