// GGUF constants shared by the reader and the writer (see ggml/docs/gguf.md).
import type { WeightDType } from "../model/weights.ts";
import { DTYPE_BLOCK } from "./weight-codec.ts";

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types. */
export const GGUF_TYPE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;
export type GgufValueType = (typeof GGUF_TYPE)[keyof typeof GGUF_TYPE];

/** A metadata value: numbers (64-bit integers beyond 2^53 stay bigint), booleans, strings, arrays of them. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufMetadataEntry {
  type: GgufValueType;
  /** For arrays: the element type. */
  itemType?: GgufValueType;
  value: GgufValue;
}

export type GgufMetadata = Map<string, GgufMetadataEntry>;

/** ggml tensor types: the ones this engine reads, and the names of the rest so that a refusal names them. */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q4_K: 12, Q6_K: 14, BF16: 30 } as const;

/** The engine's dtype of each ggml type it reads. */
export const GGML_DTYPE: Readonly<Record<number, WeightDType>> = {
  [GGML_TYPE.F32]: "f32",
  [GGML_TYPE.F16]: "f16",
  [GGML_TYPE.Q4_0]: "q4_0",
  [GGML_TYPE.Q8_0]: "q8_0",
  [GGML_TYPE.Q4_K]: "q4_k",
  [GGML_TYPE.Q6_K]: "q6_k",
  [GGML_TYPE.BF16]: "bf16",
};

/** The ggml type that stores each dtype. */
export const DTYPE_GGML: Readonly<Record<WeightDType, number>> = {
  f32: GGML_TYPE.F32,
  f16: GGML_TYPE.F16,
  bf16: GGML_TYPE.BF16,
  q8_0: GGML_TYPE.Q8_0,
  q4_0: GGML_TYPE.Q4_0,
  q4_k: GGML_TYPE.Q4_K,
  q6_k: GGML_TYPE.Q6_K,
};

const GGML_TYPE_NAMES: Record<number, string> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  6: "Q5_0",
  7: "Q5_1",
  8: "Q8_0",
  9: "Q8_1",
  10: "Q2_K",
  11: "Q3_K",
  12: "Q4_K",
  13: "Q5_K",
  14: "Q6_K",
  15: "Q8_K",
  16: "IQ2_XXS",
  17: "IQ2_XS",
  18: "IQ3_XXS",
  19: "IQ1_S",
  20: "IQ4_NL",
  21: "IQ3_S",
  22: "IQ2_S",
  23: "IQ4_XS",
  24: "I8",
  25: "I16",
  26: "I32",
  27: "I64",
  28: "F64",
  29: "IQ1_M",
  30: "BF16",
  34: "TQ1_0",
  35: "TQ2_0",
  39: "MXFP4",
};

export function ggmlTypeName(type: number): string {
  return GGML_TYPE_NAMES[type] ?? `unknown type ${type}`;
}

/** Elements per block and bytes per block of the types this engine decodes; undefined for the others. */
export function ggmlBlock(type: number): { elements: number; bytes: number } | undefined {
  const dtype = GGML_DTYPE[type];
  return dtype === undefined ? undefined : DTYPE_BLOCK[dtype];
}

/** llama.cpp's general.file_type values for the files this engine writes. */
export const LLAMA_FILE_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, Q4_K_M: 15, Q6_K: 18, BF16: 32 } as const;

/** The llama.cpp tensor names of a LLaMA model (gguf-py's constants.py TENSOR_NAMES). */
export const GGUF_TENSOR = {
  tokenEmbedding: "token_embd.weight",
  finalNorm: "output_norm.weight",
  classifier: "output.weight",
  /** Llama 3's RoPE frequency divisors (convert_hf_to_gguf.py writes them from rope_scaling "llama3"). */
  ropeFreqs: "rope_freqs.weight",
  layer: (l: number) => ({
    attnNorm: `blk.${l}.attn_norm.weight`,
    wq: `blk.${l}.attn_q.weight`,
    wk: `blk.${l}.attn_k.weight`,
    wv: `blk.${l}.attn_v.weight`,
    wo: `blk.${l}.attn_output.weight`,
    ffnNorm: `blk.${l}.ffn_norm.weight`,
    wGate: `blk.${l}.ffn_gate.weight`,
    wUp: `blk.${l}.ffn_up.weight`,
    wDown: `blk.${l}.ffn_down.weight`,
  }),
  /** The architecture's vectors (model/weights.ts LayerVectors) by their llama.cpp names. */
  layerVectors: (l: number) => ({
    qBias: `blk.${l}.attn_q.bias`,
    kBias: `blk.${l}.attn_k.bias`,
    vBias: `blk.${l}.attn_v.bias`,
    qNorm: `blk.${l}.attn_q_norm.weight`,
    kNorm: `blk.${l}.attn_k_norm.weight`,
    attnPostNorm: `blk.${l}.post_attention_norm.weight`,
    ffnPostNorm: `blk.${l}.post_ffw_norm.weight`,
  }),
} as const;
