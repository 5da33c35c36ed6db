import type { ModelConfig } from "./config.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/**
 * One transformer block in the canonical basis: every matrix row-major [out, in], float32, and q/k rows in
 * llama2.c's order (RoPE rotates the interleaved pairs (2i, 2i+1) of each head).
 */
export interface LayerWeights {
  attnNorm: Float32Array; // [dim]
  wq: Float32Array; // [dim, dim]
  wk: Float32Array; // [kvDim, dim]
  wv: Float32Array; // [kvDim, dim]
  wo: Float32Array; // [dim, dim]
  ffnNorm: Float32Array; // [dim]
  wGate: Float32Array; // [hidden, dim]  (llama2.c w1)
  wUp: Float32Array; // [hidden, dim]    (llama2.c w3)
  wDown: Float32Array; // [dim, hidden]  (llama2.c w2)
}

/** All weights of a model in the canonical basis. Every loader produces exactly this. */
export interface ModelWeights {
  config: ModelConfig;
  tokenEmbedding: Float32Array; // [vocab, dim]
  layers: LayerWeights[];
  finalNorm: Float32Array; // [dim]
  /** [vocab, dim]; the same array as tokenEmbedding when the classifier is tied. */
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
