import type { ModelConfig } from "./config.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/** How a matrix is stored: float32, half, bfloat16, or one of ggml's block quantizations (see weight-codec.ts). */
export type WeightDType = "f32" | "f16" | "bf16" | "q8_0" | "q4_0";

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
 * One transformer block in the canonical basis: every matrix row-major [out, in], and q/k rows in llama2.c's
 * order (RoPE rotates the interleaved pairs (2i, 2i+1) of each head). Norm vectors are always float32.
 */
export interface LayerWeights {
  attnNorm: Float32Array; // [dim]
  wq: WeightMatrix; // [dim, dim]
  wk: WeightMatrix; // [kvDim, dim]
  wv: WeightMatrix; // [kvDim, dim]
  wo: WeightMatrix; // [dim, dim]
  ffnNorm: Float32Array; // [dim]
  wGate: WeightMatrix; // [hidden, dim]  (llama2.c w1)
  wUp: WeightMatrix; // [hidden, dim]    (llama2.c w3)
  wDown: WeightMatrix; // [dim, hidden]  (llama2.c w2)
}

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
export interface Float32LayerWeights {
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
 * How the source file ordered q/k rows. Hugging Face Llama checkpoints permute them for "rotate half" RoPE;
 * loaders undo that for the base weights, and PEFT adapters for such a model need the same on lora_B.
 */
export type QkBasis = "interleaved" | "rotate-half";

/** A model ready to run: canonical weights, its tokenizer and where it came from. */
export interface LoadedModel {
  /** Short name: GGUF general.name, HF _name_or_path, or the file's base name ("stories260K"). */
  name: string;
  /** The file or folder it was loaded from. */
  source: string;
  /** "llama2c" | "gguf" | "safetensors". */
  format: "llama2c" | "gguf" | "safetensors";
  /** The q/k row order of the source files; adapters for this model come in the same order. */
  qkBasis: QkBasis;
  weights: ModelWeights;
  tokenizer: Tokenizer;
}
