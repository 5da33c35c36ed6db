// Weight matrices in their file precision: block layouts, dequantization to float32 and quantization from it.
// Loaders keep a matrix's bytes as the file stores them; a backend that computes in float32 asks for the
// float32 view (float32Weights) at its boundary, a backend with its own kernels reads the blocks directly.
import { unpermuteRotateHalfRowBytes } from "../model/rope-basis.ts";
import { LAYER_VECTOR_KEYS } from "../model/weights.ts";
import type {
  Float32ModelWeights,
  LayerVectors,
  LayerWeights,
  ModelWeights,
  WeightDType,
  WeightMatrix,
} from "../model/weights.ts";
import { floatsToHalves, floatToHalf, halfTable } from "./half.ts";

/** Elements per block and bytes per block of each dtype (ggml's layouts for the quantized ones). */
export const DTYPE_BLOCK: Readonly<Record<WeightDType, { elements: number; bytes: number }>> = {
  f32: { elements: 1, bytes: 4 },
  f16: { elements: 1, bytes: 2 },
  bf16: { elements: 1, bytes: 2 },
  q8_0: { elements: 32, bytes: 34 }, // f16 scale d, 32 int8 q: x = d * q
  q4_0: { elements: 32, bytes: 18 }, // f16 scale d, 16 bytes of nibbles: x[j] = d * (lo(q[j]) - 8), x[j+16] from hi
  // K-quants, super-blocks of 256 (ggml-common.h): Q4_K = f16 d, f16 dmin, 12 bytes of 6-bit scales and mins
  // for 8 sub-blocks of 32, 128 bytes of nibbles; Q6_K = 128 bytes of low nibbles ql, 64 bytes of high 2-bit
  // pairs qh, 16 int8 scales (sub-blocks of 16), f16 d.
  q4_k: { elements: 256, bytes: 144 },
  q6_k: { elements: 256, bytes: 210 },
};

/** The formats every backend reads (the simd backend refuses the K-quants by name). */
export const WEIGHT_DTYPES: readonly WeightDType[] = ["f32", "f16", "bf16", "q8_0", "q4_0"];

/** ggml's K-quants: read by the loader, kept as blocks by the webgpu backend, dequantized by the cpu reference. */
export const K_QUANT_DTYPES: readonly WeightDType[] = ["q4_k", "q6_k"];

/** Every format the loader keeps as blocks. */
export const ALL_WEIGHT_DTYPES: readonly WeightDType[] = [...WEIGHT_DTYPES, ...K_QUANT_DTYPES];

/** Bytes of one row of `cols` elements; throws when cols is not a whole number of blocks. */
export function rowBytes(dtype: WeightDType, cols: number): number {
  const block = DTYPE_BLOCK[dtype];
  if (cols % block.elements !== 0)
    throw new RangeError(`${dtype} rows need a multiple of ${block.elements} columns, got ${cols}`);
  return (cols / block.elements) * block.bytes;
}

/** A matrix over existing bytes, checked for size. */
/**
 * q/k rows of a matrix from rotate-half back to the canonical order, in the matrix's own precision: rows are
 * moved as bytes (a row of f16 values or of Q8_0 blocks alike), nothing is decoded.
 */
export function unpermuteMatrixRows(m: WeightMatrix, nHeads: number): WeightMatrix {
  return weightMatrix(m.dtype, m.rows, m.cols, unpermuteRotateHalfRowBytes(m.data, nHeads, m.data.length / m.rows));
}

export function weightMatrix(dtype: WeightDType, rows: number, cols: number, data: Uint8Array): WeightMatrix {
  const expected = rows * rowBytes(dtype, cols);
  if (data.length !== expected)
    throw new RangeError(`${dtype} [${rows}, ${cols}] needs ${expected} bytes, got ${data.length}`);
  return { dtype, rows, cols, data };
}

/** A float32 matrix sharing the array's memory. */
export function float32Matrix(rows: number, cols: number, values: Float32Array): WeightMatrix {
  return weightMatrix("f32", rows, cols, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
}

/** Bytes the matrix holds. */
export function matrixBytes(m: WeightMatrix): number {
  return m.data.byteLength;
}

/** Decodes whole blocks of `dtype` from `bytes` into out[start ..]. */
export function decodeBlocks(dtype: WeightDType, bytes: Uint8Array, out: Float32Array, start: number): void {
  if (dtype === "f32") {
    new Uint8Array(out.buffer, out.byteOffset + 4 * start, bytes.length).set(bytes);
  } else if (dtype === "f16") {
    const table = halfTable();
    for (let i = 0, at = 0; at < bytes.length; i++, at += 2) out[start + i] = table[bytes[at] | (bytes[at + 1] << 8)];
  } else if (dtype === "bf16") {
    const bits = new Uint32Array(out.buffer, out.byteOffset + 4 * start, bytes.length / 2);
    for (let i = 0, at = 0; at < bytes.length; i++, at += 2) bits[i] = (bytes[at] | (bytes[at + 1] << 8)) << 16;
  } else if (dtype === "q8_0") {
    const table = halfTable();
    const signed = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    for (let b = 0, at = 0; at < bytes.length; b++, at += 34) {
      const d = table[bytes[at] | (bytes[at + 1] << 8)];
      const base = start + 32 * b;
      for (let j = 0; j < 32; j++) out[base + j] = d * signed[at + 2 + j];
    }
  } else if (dtype === "q4_k") {
    decodeQ4K(bytes, out, start);
  } else if (dtype === "q6_k") {
    decodeQ6K(bytes, out, start);
  } else {
    const table = halfTable();
    for (let b = 0, at = 0; at < bytes.length; b++, at += 18) {
      const d = table[bytes[at] | (bytes[at + 1] << 8)];
      const base = start + 32 * b;
      for (let j = 0; j < 16; j++) {
        const q = bytes[at + 2 + j];
        out[base + j] = d * ((q & 15) - 8);
        out[base + j + 16] = d * ((q >> 4) - 8);
      }
    }
  }
}

/** Q4_K's 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes at `at` (ggml's get_scale_min_k4). */
function scaleMinK4(bytes: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [bytes[at + j] & 63, bytes[at + j + 4] & 63];
  const low = bytes[at + j + 4];
  return [(low & 15) | ((bytes[at + j - 4] >> 6) << 4), (low >> 4) | ((bytes[at + j] >> 6) << 4)];
}

/** ggml's dequantize_row_q4_K: x = d * scale * q - dmin * min, sub-blocks of 32 from the low then high nibbles. */
function decodeQ4K(bytes: Uint8Array, out: Float32Array, start: number): void {
  const table = halfTable();
  for (let b = 0, at = 0; at < bytes.length; b++, at += 144) {
    const d = table[bytes[at] | (bytes[at + 1] << 8)];
    const dmin = table[bytes[at + 2] | (bytes[at + 3] << 8)];
    let y = start + 256 * b;
    for (let j = 0; j < 4; j++) {
      const [s1, m1] = scaleMinK4(bytes, at + 4, 2 * j);
      const [s2, m2] = scaleMinK4(bytes, at + 4, 2 * j + 1);
      const q = at + 16 + 32 * j;
      for (let l = 0; l < 32; l++) out[y + l] = d * s1 * (bytes[q + l] & 15) - dmin * m1;
      for (let l = 0; l < 32; l++) out[y + 32 + l] = d * s2 * (bytes[q + l] >> 4) - dmin * m2;
      y += 64;
    }
  }
}

/** ggml's dequantize_row_q6_K: 6-bit q from a nibble of ql and two bits of qh, x = d * scale * (q - 32). */
function decodeQ6K(bytes: Uint8Array, out: Float32Array, start: number): void {
  const table = halfTable();
  const signed = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let b = 0, at = 0; at < bytes.length; b++, at += 210) {
    const d = table[bytes[at + 208] | (bytes[at + 209] << 8)];
    for (let n = 0; n < 2; n++) {
      const ql = at + 64 * n;
      const qh = at + 128 + 32 * n;
      const sc = at + 192 + 8 * n;
      const y = start + 256 * b + 128 * n;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = bytes[qh + l];
        out[y + l] = d * signed[sc + is] * (((bytes[ql + l] & 15) | ((h & 3) << 4)) - 32);
        out[y + l + 32] = d * signed[sc + is + 2] * (((bytes[ql + l + 32] & 15) | (((h >> 2) & 3) << 4)) - 32);
        out[y + l + 64] = d * signed[sc + is + 4] * (((bytes[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32);
        out[y + l + 96] = d * signed[sc + is + 6] * (((bytes[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32);
      }
    }
  }
}

/** Rows first .. first + count - 1 as float32, [count, cols]. */
export function dequantizeRows(
  m: WeightMatrix,
  first: number,
  count: number,
  out: Float32Array = new Float32Array(count * m.cols),
): Float32Array {
  const bytes = rowBytes(m.dtype, m.cols);
  decodeBlocks(m.dtype, m.data.subarray(first * bytes, (first + count) * bytes), out, 0);
  return out;
}

/** The whole matrix as float32: the same memory for an aligned f32 matrix, a new array otherwise. */
export function dequantize(m: WeightMatrix): Float32Array {
  if (m.dtype === "f32" && m.data.byteOffset % 4 === 0)
    return new Float32Array(m.data.buffer, m.data.byteOffset, m.rows * m.cols);
  return dequantizeRows(m, 0, m.rows);
}

/**
 * llama.cpp's quantize_row_q8_0_ref, in float32 arithmetic like the C: d = amax / 127 stored as f16,
 * q = roundf(x / d) (half away from zero). Same bytes as llama.cpp for the same input.
 */
export function quantizeQ8_0(values: Float32Array, out: Uint8Array): void {
  const signed = new Int8Array(out.buffer, out.byteOffset, out.length);
  for (let b = 0; b * 32 < values.length; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[32 * b + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const half = floatToHalf(d);
    out[34 * b] = half & 0xff;
    out[34 * b + 1] = half >> 8;
    for (let j = 0; j < 32; j++) {
      const x = Math.fround(values[32 * b + j] * id);
      signed[34 * b + 2 + j] = x < 0 ? -Math.round(-x) : Math.round(x);
    }
  }
}

/**
 * llama.cpp's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8 as f16,
 * q = min(15, trunc(x / d + 8.5)); element j in the low nibble of byte j, element j + 16 in its high nibble.
 */
export function quantizeQ4_0(values: Float32Array, out: Uint8Array): void {
  for (let b = 0; b * 32 < values.length; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = values[32 * b + j];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    const half = floatToHalf(d);
    out[18 * b] = half & 0xff;
    out[18 * b + 1] = half >> 8;
    const q = (x: number): number => Math.min(15, Math.trunc(Math.fround(Math.fround(x * id) + 8.5)));
    for (let j = 0; j < 16; j++) out[18 * b + 2 + j] = q(values[32 * b + j]) | (q(values[32 * b + j + 16]) << 4);
  }
}

/**
 * Q4_K from float32, a plain (not llama.cpp's iterative) fit: each sub-block of 32 maps [min(0, lo), hi] onto
 * 0..15; the sub-block scales and mins become 6-bit multiples of the super-block's f16 d and dmin. The blocks
 * are ggml's layout, so llama.cpp and this engine decode them alike; only the choice of scales differs.
 */
export function quantizeQ4K(values: Float32Array, out: Uint8Array): void {
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  const sc = new Uint8Array(8);
  const mn = new Uint8Array(8);
  const table = halfTable();
  for (let b = 0; b * 256 < values.length; b++) {
    const x = values.subarray(256 * b, 256 * b + 256);
    const at = 144 * b;
    for (let j = 0; j < 8; j++) {
      let lo = 0;
      let hi = -Infinity;
      for (let l = 0; l < 32; l++) {
        lo = Math.min(lo, x[32 * j + l]);
        hi = Math.max(hi, x[32 * j + l]);
      }
      scales[j] = Math.max(0, hi - lo) / 15;
      mins[j] = -lo;
    }
    const dHalf = floatToHalf(Math.max(...scales) / 63);
    const mHalf = floatToHalf(Math.max(...mins) / 63);
    const d = table[dHalf];
    const dmin = table[mHalf];
    for (let j = 0; j < 8; j++) {
      sc[j] = d ? Math.min(63, Math.round(scales[j] / d)) : 0;
      mn[j] = dmin ? Math.min(63, Math.round(mins[j] / dmin)) : 0;
    }
    out[at] = dHalf & 0xff;
    out[at + 1] = dHalf >> 8;
    out[at + 2] = mHalf & 0xff;
    out[at + 3] = mHalf >> 8;
    for (let j = 0; j < 4; j++) {
      out[at + 4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
      out[at + 8 + j] = mn[j] | ((mn[j + 4] >> 4) << 6);
      out[at + 12 + j] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
    }
    const q = (i: number, j: number): number => {
      const step = d * sc[j];
      return step ? Math.max(0, Math.min(15, Math.round((x[i] + dmin * mn[j]) / step))) : 0;
    };
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) {
        out[at + 16 + 32 * j + l] = q(64 * j + l, 2 * j) | (q(64 * j + 32 + l, 2 * j + 1) << 4);
      }
    }
  }
}

/**
 * Q6_K from float32, a plain fit: each sub-block of 16 gets scale amax / 31 (so q - 32 stays in -31..31), the
 * sub-block scales become int8 multiples of the super-block's f16 d. ggml's layout (see quantize_row_q6_K_ref).
 */
export function quantizeQ6K(values: Float32Array, out: Uint8Array): void {
  const scales = new Float32Array(16);
  const L = new Uint8Array(256);
  const signed = new Int8Array(out.buffer, out.byteOffset, out.length);
  const table = halfTable();
  for (let b = 0; b * 256 < values.length; b++) {
    const x = values.subarray(256 * b, 256 * b + 256);
    const at = 210 * b;
    for (let s = 0; s < 16; s++) {
      let amax = 0;
      for (let l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(x[16 * s + l]));
      scales[s] = amax / 31;
    }
    const dHalf = floatToHalf(Math.max(...scales) / 127);
    const d = table[dHalf];
    for (let s = 0; s < 16; s++) {
      const sc = d ? Math.min(127, Math.round(scales[s] / d)) : 0;
      signed[at + 192 + s] = sc;
      const step = d * sc;
      for (let l = 0; l < 16; l++) {
        const v = step ? Math.round(x[16 * s + l] / step) : 0;
        L[16 * s + l] = Math.max(-32, Math.min(31, v)) + 32;
      }
    }
    for (let n = 0; n < 2; n++) {
      const j = 128 * n;
      for (let l = 0; l < 32; l++) {
        out[at + 64 * n + l] = (L[j + l] & 15) | ((L[j + l + 64] & 15) << 4);
        out[at + 64 * n + l + 32] = (L[j + l + 32] & 15) | ((L[j + l + 96] & 15) << 4);
        out[at + 128 + 32 * n + l] =
          (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6);
      }
    }
    out[at + 208] = dHalf & 0xff;
    out[at + 209] = dHalf >> 8;
  }
}

/** float32 to bfloat16 bits, rounding to nearest even (NaN stays NaN). */
export function floatsToBf16(src: Float32Array, dst = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    dst[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return dst;
}

/** Encodes float32 values (whole blocks) as `dtype` bytes. */
export function encodeBlocks(dtype: WeightDType, values: Float32Array, out: Uint8Array): void {
  if (dtype === "f32") out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  else if (dtype === "f16") out.set(new Uint8Array(floatsToHalves(values).buffer));
  else if (dtype === "bf16") out.set(new Uint8Array(floatsToBf16(values).buffer));
  else if (dtype === "q8_0") quantizeQ8_0(values, out);
  else if (dtype === "q4_k") quantizeQ4K(values, out);
  else if (dtype === "q6_k") quantizeQ6K(values, out);
  else quantizeQ4_0(values, out);
}

/** A [rows, cols] float32 matrix stored as `dtype`. */
export function quantizeMatrix(values: Float32Array, rows: number, cols: number, dtype: WeightDType): WeightMatrix {
  const data = new Uint8Array(rows * rowBytes(dtype, cols));
  encodeBlocks(dtype, values, data);
  return weightMatrix(dtype, rows, cols, data);
}

const MATRIX_KEYS = [
  "wq",
  "wk",
  "wv",
  "wo",
  "wGate",
  "wUp",
  "wDown",
] as const satisfies readonly (keyof LayerWeights)[];

/** The architecture's vectors a block has (biases, q/k and post norms), float32 in every view. */
function layerVectors(layer: LayerVectors): LayerVectors {
  const out: LayerVectors = {};
  for (const key of LAYER_VECTOR_KEYS) if (layer[key]) out[key] = layer[key];
  return out;
}

const float32Views = new WeakMap<ModelWeights, Float32ModelWeights>();

/**
 * The model in float32, for backends that compute in float32 (the cpu reference, webgpu): quantized and half
 * matrices are dequantized here, f32 ones shared. One view per model (later calls return the same), and a tied
 * classifier stays the same array as the embedding.
 */
export function float32Weights(weights: ModelWeights): Float32ModelWeights {
  const cached = float32Views.get(weights);
  if (cached) return cached;
  const tokenEmbedding = dequantize(weights.tokenEmbedding);
  const view: Float32ModelWeights = {
    config: weights.config,
    tokenEmbedding,
    layers: weights.layers.map((layer) => {
      const out = {
        ...layerVectors(layer),
        attnNorm: layer.attnNorm,
        ffnNorm: layer.ffnNorm,
      } as Float32ModelWeights["layers"][number];
      for (const key of MATRIX_KEYS) out[key] = dequantize(layer[key]);
      return out;
    }),
    finalNorm: weights.finalNorm,
    classifier: weights.classifier === weights.tokenEmbedding ? tokenEmbedding : dequantize(weights.classifier),
  };
  float32Views.set(weights, view);
  return view;
}

/** Every matrix of a float32 model stored as `dtype` (norms stay f32; a tied classifier stays tied). */
export function quantizeWeights(weights: Float32ModelWeights, dtype: WeightDType): ModelWeights {
  const { dim, hiddenDim, vocabSize, nKvHeads, nHeads, headDim } = weights.config;
  const kvDim = nKvHeads * headDim;
  const qDim = nHeads * headDim;
  const q = (values: Float32Array, rows: number, cols: number): WeightMatrix =>
    quantizeMatrix(values, rows, cols, dtype);
  const tokenEmbedding = q(weights.tokenEmbedding, vocabSize, dim);
  return {
    config: weights.config,
    tokenEmbedding,
    layers: weights.layers.map((l) => ({
      ...layerVectors(l),
      attnNorm: l.attnNorm,
      wq: q(l.wq, qDim, dim),
      wk: q(l.wk, kvDim, dim),
      wv: q(l.wv, kvDim, dim),
      wo: q(l.wo, dim, qDim),
      ffnNorm: l.ffnNorm,
      wGate: q(l.wGate, hiddenDim, dim),
      wUp: q(l.wUp, hiddenDim, dim),
      wDown: q(l.wDown, dim, hiddenDim),
    })),
    finalNorm: weights.finalNorm,
    classifier: weights.classifier === weights.tokenEmbedding ? tokenEmbedding : q(weights.classifier, vocabSize, dim),
  };
}

/** Total bytes of the model's matrices and norms (a tied classifier counted once). */
export function weightBytes(weights: ModelWeights): number {
  let bytes = matrixBytes(weights.tokenEmbedding) + 4 * weights.finalNorm.length;
  if (weights.classifier !== weights.tokenEmbedding) bytes += matrixBytes(weights.classifier);
  for (const layer of weights.layers) {
    bytes += 4 * (layer.attnNorm.length + layer.ffnNorm.length);
    for (const vector of Object.values(layerVectors(layer))) bytes += 4 * vector.length;
    for (const key of MATRIX_KEYS) bytes += matrixBytes(layer[key]);
  }
  return bytes;
}
