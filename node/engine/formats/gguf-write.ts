// GGUF v3 writer, the inverse of gguf-read.ts. Tensors are produced one at a time and streamed to the file in
// chunks, so writing a multi-GB model needs memory for one tensor, not for the file.
import { closeSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { ModelFormatError } from "../errors.ts";
import { architectureOf, qDimOf, type ModelConfig } from "../model/config.ts";
import { permuteRotateHalfRows } from "../model/rope-basis.ts";
import { LAYER_VECTOR_KEYS, type ModelWeights, type WeightDType } from "../model/weights.ts";
import type { ByteLevelBpeVocab } from "../tokenizer/byte-level-bpe.ts";
import type { SentencePieceVocab } from "../tokenizer/sentencepiece-bpe.ts";
import {
  DTYPE_GGML,
  GGML_DTYPE,
  GGML_TYPE,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_TENSOR,
  GGUF_TYPE,
  LLAMA_FILE_TYPE,
  ggmlBlock,
  ggmlTypeName,
} from "./gguf-types.ts";
import { DTYPE_BLOCK, encodeBlocks, float32Weights, rowBytes } from "./weight-codec.ts";
import type { GgufMetadataEntry, GgufValue, GgufValueType } from "./gguf-types.ts";

/** One tensor to write: ggml dims (innermost first), the stored type, and its float32 values on demand. */
export interface GgufTensorSource {
  name: string;
  dims: number[];
  type: number;
  data(): Float32Array;
}

/** Storage precision of a written model's matrices (norms always stay F32, as llama.cpp keeps them). */
export type GgufDtype = WeightDType;

/** Elements converted per chunk while streaming a tensor out. */
const CHUNK_ELEMENTS = 1 << 22;

/** Growable little-endian byte buffer for the header. */
class HeaderBuilder {
  private bytes = new Uint8Array(1 << 16);
  private view = new DataView(this.bytes.buffer);
  length = 0;

  private room(n: number): number {
    if (this.length + n > this.bytes.length) {
      const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n));
      grown.set(this.bytes.subarray(0, this.length));
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  u8(v: number): void {
    const at = this.room(1);
    this.view.setUint8(at, v);
  }
  i8(v: number): void {
    const at = this.room(1);
    this.view.setInt8(at, v);
  }
  u16(v: number): void {
    const at = this.room(2);
    this.view.setUint16(at, v, true);
  }
  i16(v: number): void {
    const at = this.room(2);
    this.view.setInt16(at, v, true);
  }
  u32(v: number): void {
    const at = this.room(4);
    this.view.setUint32(at, v, true);
  }
  i32(v: number): void {
    const at = this.room(4);
    this.view.setInt32(at, v, true);
  }
  f32(v: number): void {
    const at = this.room(4);
    this.view.setFloat32(at, v, true);
  }
  f64(v: number): void {
    const at = this.room(8);
    this.view.setFloat64(at, v, true);
  }
  u64(v: number | bigint): void {
    const at = this.room(8);
    this.view.setBigUint64(at, BigInt(v), true);
  }
  i64(v: number | bigint): void {
    const at = this.room(8);
    this.view.setBigInt64(at, BigInt(v), true);
  }

  string(s: string): void {
    const encoded = new TextEncoder().encode(s);
    this.u64(encoded.length);
    const at = this.room(encoded.length);
    this.bytes.set(encoded, at);
  }

  pad(alignment: number): void {
    this.room((alignment - (this.length % alignment)) % alignment); // new bytes are already zero
  }

  result(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

function writeValue(
  out: HeaderBuilder,
  type: GgufValueType,
  value: GgufValue,
  key: string,
  itemType?: GgufValueType,
): void {
  const num = (): number => {
    if (typeof value !== "number") throw new TypeError(`GGUF metadata ${key}: expected a number, got ${typeof value}`);
    return value;
  };
  switch (type) {
    case GGUF_TYPE.uint8:
      return out.u8(num());
    case GGUF_TYPE.int8:
      return out.i8(num());
    case GGUF_TYPE.uint16:
      return out.u16(num());
    case GGUF_TYPE.int16:
      return out.i16(num());
    case GGUF_TYPE.uint32:
      return out.u32(num());
    case GGUF_TYPE.int32:
      return out.i32(num());
    case GGUF_TYPE.float32:
      return out.f32(num());
    case GGUF_TYPE.float64:
      return out.f64(num());
    case GGUF_TYPE.uint64:
      return out.u64(value as number | bigint);
    case GGUF_TYPE.int64:
      return out.i64(value as number | bigint);
    case GGUF_TYPE.bool:
      return out.u8(value ? 1 : 0);
    case GGUF_TYPE.string:
      return out.string(String(value));
    case GGUF_TYPE.array: {
      if (!Array.isArray(value) || itemType === undefined)
        throw new TypeError(`GGUF metadata ${key}: an array needs items and an itemType`);
      if (itemType === GGUF_TYPE.array) throw new TypeError(`GGUF metadata ${key}: nested arrays are not written`);
      out.u32(itemType);
      out.u64(value.length);
      for (const item of value) writeValue(out, itemType, item, key);
      return;
    }
  }
}

function typedSize(type: number, elements: number, name: string): number {
  const block = ggmlBlock(type);
  if (!block) throw new TypeError(`GGUF tensor ${name}: cannot write type ${ggmlTypeName(type)}`);
  if (elements % block.elements !== 0)
    throw new TypeError(`GGUF tensor ${name}: ${elements} elements are not whole ${ggmlTypeName(type)} blocks`);
  return (elements / block.elements) * block.bytes;
}

/**
 * Writes a GGUF v3 file: metadata in the given order, then tensor infos, then the data, each tensor aligned.
 * The file appears under its name only when complete (written beside it, then renamed).
 */
export function writeGguf(
  file: string,
  metadata: Iterable<[string, GgufMetadataEntry]>,
  tensors: readonly GgufTensorSource[],
  options: { alignment?: number } = {},
): void {
  const entries = [...metadata].filter(([key]) => key !== "general.alignment");
  const alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (alignment !== GGUF_DEFAULT_ALIGNMENT)
    entries.push(["general.alignment", { type: GGUF_TYPE.uint32, value: alignment }]);
  const header = new HeaderBuilder();
  header.u32(GGUF_MAGIC);
  header.u32(3);
  header.u64(tensors.length);
  header.u64(entries.length);
  for (const [key, entry] of entries) {
    header.string(key);
    header.u32(entry.type);
    writeValue(header, entry.type, entry.value, key, entry.itemType);
  }
  const sizes: number[] = [];
  let offset = 0;
  for (const tensor of tensors) {
    const elements = tensor.dims.reduce((a, b) => a * b, 1);
    const dtype = GGML_DTYPE[tensor.type];
    if (dtype === undefined) {
      throw new TypeError(
        `GGUF tensor ${tensor.name}: the writer stores F32, F16, BF16, Q8_0 or Q4_0, not ${ggmlTypeName(tensor.type)}`,
      );
    }
    const block = DTYPE_BLOCK[dtype].elements;
    if (tensor.dims[0] % block !== 0) {
      throw new TypeError(
        `GGUF tensor ${tensor.name}: ${ggmlTypeName(tensor.type)} needs the first dimension to be a multiple of ${block}, got [${tensor.dims}]`,
      );
    }
    const size = typedSize(tensor.type, elements, tensor.name);
    header.string(tensor.name);
    header.u32(tensor.dims.length);
    for (const d of tensor.dims) header.u64(d);
    header.u32(tensor.type);
    header.u64(offset);
    sizes.push(size);
    offset += Math.ceil(size / alignment) * alignment;
  }
  header.pad(alignment);

  const temporary = `${file}.partial-${process.pid}`;
  const fd = openSync(temporary, "w");
  try {
    writeAll(fd, header.result());
    const padding = new Uint8Array(alignment);
    tensors.forEach((tensor, i) => {
      const data = tensor.data();
      const elements = tensor.dims.reduce((a, b) => a * b, 1);
      if (data.length !== elements) {
        throw new TypeError(
          `GGUF tensor ${tensor.name}: ${data.length} values for dims [${tensor.dims}] (${elements})`,
        );
      }
      writeTensor(fd, tensor.type, data);
      const pad = (alignment - (sizes[i] % alignment)) % alignment;
      if (pad > 0) writeAll(fd, padding.subarray(0, pad));
    });
    closeSync(fd);
    renameSync(temporary, file);
  } catch (error) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(temporary, { force: true });
    throw error;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
}

function writeTensor(fd: number, type: number, data: Float32Array): void {
  if (type === GGML_TYPE.F32) {
    writeAll(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return;
  }
  // CHUNK_ELEMENTS is a multiple of every block size, so chunks hold whole blocks.
  const dtype = GGML_DTYPE[type];
  const bytesPerChunk = rowBytes(dtype, Math.min(CHUNK_ELEMENTS, data.length));
  const scratch = new Uint8Array(bytesPerChunk);
  for (let start = 0; start < data.length; start += CHUNK_ELEMENTS) {
    const chunk = data.subarray(start, Math.min(data.length, start + CHUNK_ELEMENTS));
    const bytes = scratch.subarray(0, rowBytes(dtype, chunk.length));
    encodeBlocks(dtype, chunk, bytes);
    writeAll(fd, bytes);
  }
}

/** A tokenizer as GGUF metadata holds it: SentencePiece ("llama") or byte-level BPE ("gpt2"). */
export type GgufVocab = SentencePieceVocab | ByteLevelBpeVocab;

export function isByteLevelVocab(vocab: GgufVocab): vocab is ByteLevelBpeVocab {
  return "merges" in vocab;
}

/** A model to write: its shape, tokenizer and canonical tensors by llama.cpp name, each made when needed. */
export interface GgufModelInput {
  name: string;
  config: ModelConfig;
  vocab: GgufVocab;
  /** SentencePiece only: whether the tokenizer puts "▁" before the text (Gemma's does not). Default true. */
  addSpacePrefix?: boolean;
  /** Written as tokenizer.chat_template. */
  chatTemplate?: string;
  /** Tied: no output.weight is written, readers reuse token_embd. */
  tiedClassifier: boolean;
  /** A canonical [out, in] (or 1-D) tensor by its llama.cpp name (see GGUF_TENSOR), in the interleaved basis. */
  tensor(name: string): Float32Array;
}

/** Wraps weights that are already in memory as a GgufModelInput (the writer quantizes from their float32 view). */
export function ggufModelInput(model: ModelWeights, vocab: GgufVocab, name: string): GgufModelInput {
  const weights = float32Weights(model);
  const byName = new Map<string, Float32Array>([
    [GGUF_TENSOR.tokenEmbedding, weights.tokenEmbedding],
    [GGUF_TENSOR.finalNorm, weights.finalNorm],
    [GGUF_TENSOR.classifier, weights.classifier],
  ]);
  const factors = architectureOf(weights.config).ropeFreqFactors;
  if (factors) byName.set(GGUF_TENSOR.ropeFreqs, Float32Array.from(factors));
  weights.layers.forEach((layer, l) => {
    const names = GGUF_TENSOR.layer(l);
    for (const key of Object.keys(names) as (keyof typeof names)[]) byName.set(names[key], layer[key]);
    const extra = GGUF_TENSOR.layerVectors(l);
    for (const key of LAYER_VECTOR_KEYS) if (layer[key]) byName.set(extra[key], layer[key]);
  });
  return {
    name,
    config: weights.config,
    vocab,
    tiedClassifier: weights.classifier === weights.tokenEmbedding,
    tensor: (tensorName) => {
      const data = byName.get(tensorName);
      if (!data) throw new TypeError(`no tensor ${tensorName} in these weights`);
      return data;
    },
  };
}

/**
 * Tensor list of a model of this config in llama.cpp's order, with ggml dims (innermost first): the LLaMA
 * block, and the architecture's tensors (rope_freqs, q/k/v biases, q/k norms, post-norms) where it has them.
 */
export function llamaTensorLayout(config: ModelConfig, tiedClassifier: boolean): { name: string; dims: number[] }[] {
  const { dim, hiddenDim, vocabSize, headDim } = config;
  const arch = architectureOf(config);
  const kvDim = config.nKvHeads * headDim;
  const qDim = qDimOf(config);
  const list: { name: string; dims: number[] }[] = [{ name: GGUF_TENSOR.tokenEmbedding, dims: [dim, vocabSize] }];
  if (arch.ropeFreqFactors) list.push({ name: GGUF_TENSOR.ropeFreqs, dims: [headDim / 2] });
  for (let l = 0; l < config.nLayers; l++) {
    const n = GGUF_TENSOR.layer(l);
    const v = GGUF_TENSOR.layerVectors(l);
    list.push(
      { name: n.attnNorm, dims: [dim] },
      { name: n.wq, dims: [dim, qDim] },
      { name: n.wk, dims: [dim, kvDim] },
      { name: n.wv, dims: [dim, kvDim] },
    );
    if (arch.qkvBias)
      list.push({ name: v.qBias, dims: [qDim] }, { name: v.kBias, dims: [kvDim] }, { name: v.vBias, dims: [kvDim] });
    if (arch.qkNorm) list.push({ name: v.qNorm, dims: [headDim] }, { name: v.kNorm, dims: [headDim] });
    list.push({ name: n.wo, dims: [qDim, dim] });
    if (arch.postNorms) list.push({ name: v.attnPostNorm, dims: [dim] });
    list.push(
      { name: n.ffnNorm, dims: [dim] },
      { name: n.wGate, dims: [dim, hiddenDim] },
      { name: n.wUp, dims: [dim, hiddenDim] },
      { name: n.wDown, dims: [hiddenDim, dim] },
    );
    if (arch.postNorms) list.push({ name: v.ffnPostNorm, dims: [dim] });
  }
  list.push({ name: GGUF_TENSOR.finalNorm, dims: [dim] });
  if (!tiedClassifier) list.push({ name: GGUF_TENSOR.classifier, dims: [dim, vocabSize] });
  return list;
}

/** The ggml type a tensor is stored as for a requested dtype: vectors stay F32, blocks need rows of 32s (else F16). */
function storedType(dims: number[], dtype: GgufDtype): number {
  if (dims.length === 1) return GGML_TYPE.F32;
  return dims[0] % DTYPE_BLOCK[dtype].elements === 0 ? DTYPE_GGML[dtype] : GGML_TYPE.F16;
}

/**
 * What llama.cpp cannot read back as this engine computes it, in words (null when the model fits a GGUF): its
 * gemma2 takes the attention scale from the layer count and soft-caps always, its llama/qwen2/qwen3 have no
 * sliding windows and no rope_freqs outside llama.
 */
export function ggufUnrepresentable(config: ModelConfig): string | null {
  const arch = architectureOf(config);
  const windows = arch.slidingWindows;
  if (arch.family === "gemma2") {
    const expectedScale = 1 / Math.sqrt(config.nLayers === 46 ? config.dim / config.nHeads : config.headDim);
    if (Math.abs(arch.attnScale / expectedScale - 1) > 1e-6)
      return `gemma2 attention scale ${arch.attnScale} (llama.cpp uses ${expectedScale} for ${config.nLayers} layers)`;
    if (arch.attnSoftcap === 0 || arch.finalSoftcap === 0)
      return "gemma2 without soft-capping (llama.cpp always soft-caps)";
    if (!windows.every((w, l) => (l % 2 === 0 ? w === windows[0] : w === 0)))
      return "gemma2 sliding windows other than one window on the even layers";
  } else if (windows.some((w) => w > 0)) {
    return `sliding-window attention in a ${arch.family} model`;
  }
  if (arch.ropeFreqFactors && arch.family !== "llama") return `RoPE frequency factors in a ${arch.family} model`;
  return null;
}

/** The {arch}.* and tokenizer.ggml.* metadata llama.cpp expects of the model. */
export function llamaMetadata(input: GgufModelInput, dtype: GgufDtype): [string, GgufMetadataEntry][] {
  const { config, vocab } = input;
  const arch = architectureOf(config);
  const family = arch.family;
  const u32 = (value: number): GgufMetadataEntry => ({ type: GGUF_TYPE.uint32, value });
  const f32 = (value: number): GgufMetadataEntry => ({ type: GGUF_TYPE.float32, value });
  const str = (value: string): GgufMetadataEntry => ({ type: GGUF_TYPE.string, value });
  const bool = (value: boolean): GgufMetadataEntry => ({ type: GGUF_TYPE.bool, value });
  const strings = (value: string[]): GgufMetadataEntry => ({
    type: GGUF_TYPE.array,
    itemType: GGUF_TYPE.string,
    value,
  });
  const fileType = {
    f32: LLAMA_FILE_TYPE.F32,
    f16: LLAMA_FILE_TYPE.F16,
    bf16: LLAMA_FILE_TYPE.BF16,
    q8_0: LLAMA_FILE_TYPE.Q8_0,
    q4_0: LLAMA_FILE_TYPE.Q4_0,
    q4_k: LLAMA_FILE_TYPE.Q4_K_M,
    q6_k: LLAMA_FILE_TYPE.Q6_K,
  }[dtype];
  const entries: [string, GgufMetadataEntry][] = [
    ["general.architecture", str(family)],
    ["general.name", str(input.name)],
    ["general.file_type", u32(fileType)],
    [`${family}.context_length`, u32(config.maxSeqLen)],
    [`${family}.embedding_length`, u32(config.dim)],
    [`${family}.feed_forward_length`, u32(config.hiddenDim)],
    [`${family}.block_count`, u32(config.nLayers)],
    [`${family}.attention.head_count`, u32(config.nHeads)],
    [`${family}.attention.head_count_kv`, u32(config.nKvHeads)],
    [`${family}.rope.dimension_count`, u32(config.headDim)],
    [`${family}.attention.layer_norm_rms_epsilon`, f32(config.normEps)],
    [`${family}.rope.freq_base`, f32(config.ropeTheta)],
    [`${family}.vocab_size`, u32(config.vocabSize)],
  ];
  if (qDimOf(config) !== config.dim || family === "qwen3" || family === "gemma2") {
    entries.push(
      [`${family}.attention.key_length`, u32(config.headDim)],
      [`${family}.attention.value_length`, u32(config.headDim)],
    );
  }
  if (family === "gemma2") {
    entries.push(
      [`${family}.attn_logit_softcapping`, f32(arch.attnSoftcap)],
      [`${family}.final_logit_softcapping`, f32(arch.finalSoftcap)],
      [`${family}.attention.sliding_window`, u32(arch.slidingWindows[0])],
    );
  }
  if (isByteLevelVocab(vocab)) {
    entries.push(
      ["tokenizer.ggml.model", str("gpt2")],
      ["tokenizer.ggml.pre", str(vocab.pre)],
      ["tokenizer.ggml.tokens", strings(vocab.tokens)],
      ["tokenizer.ggml.token_type", { type: GGUF_TYPE.array, itemType: GGUF_TYPE.int32, value: vocab.types }],
      ["tokenizer.ggml.merges", strings(vocab.merges.map(([a, b]) => `${a} ${b}`))],
      ["tokenizer.ggml.eos_token_id", u32(vocab.eosId)],
      ["tokenizer.ggml.add_bos_token", bool(vocab.addBos)],
    );
    if (vocab.bosId >= 0) entries.push(["tokenizer.ggml.bos_token_id", u32(vocab.bosId)]);
  } else {
    entries.push(
      ["tokenizer.ggml.model", str("llama")],
      ["tokenizer.ggml.tokens", strings(vocab.pieces)],
      ["tokenizer.ggml.scores", { type: GGUF_TYPE.array, itemType: GGUF_TYPE.float32, value: vocab.scores }],
      ["tokenizer.ggml.token_type", { type: GGUF_TYPE.array, itemType: GGUF_TYPE.int32, value: vocab.types }],
      ["tokenizer.ggml.bos_token_id", u32(vocab.bosId)],
      ["tokenizer.ggml.eos_token_id", u32(vocab.eosId)],
      ["tokenizer.ggml.unknown_token_id", u32(vocab.unkId)],
    );
    if (input.addSpacePrefix === false) entries.push(["tokenizer.ggml.add_space_prefix", bool(false)]);
  }
  if (input.chatTemplate !== undefined) entries.push(["tokenizer.chat_template", str(input.chatTemplate)]);
  return entries;
}

/** Architectures whose GGUF keeps q/k rows (and their biases and norms) in rotate-half order (NEOX RoPE). */
const ROTATE_HALF_FAMILIES = ["qwen2", "qwen3", "gemma2"];

/**
 * The tensor as the file stores it: for rotate-half architectures the q/k weights, biases and norm weights
 * leave the canonical basis (gguf-model.ts brings them back).
 */
function fileOrder(config: ModelConfig, name: string, data: Float32Array): Float32Array {
  if (!ROTATE_HALF_FAMILIES.includes(architectureOf(config).family)) return data;
  const match = /^blk\.\d+\.attn_(q|k)(\.weight|\.bias|_norm\.weight)$/.exec(name);
  if (!match) return data;
  const heads = match[2] === "_norm.weight" ? 1 : match[1] === "q" ? config.nHeads : config.nKvHeads;
  const cols = match[2] === ".weight" ? config.dim : 1;
  return permuteRotateHalfRows(data, heads, cols);
}

/**
 * Writes a model as GGUF v3 that llama.cpp and this engine's reader load: matrices as `dtype` (Q8_0/Q4_0 fall
 * back to F16 for rows not a multiple of 32), vectors F32, q/k in the basis llama.cpp's architecture expects.
 * Refuses (naming the file) what llama.cpp could not read back the same (ggufUnrepresentable).
 */
export function writeGgufModel(file: string, input: GgufModelInput, options: { dtype: GgufDtype }): void {
  const tokens = isByteLevelVocab(input.vocab) ? input.vocab.tokens.length : input.vocab.pieces.length;
  if (tokens > input.config.vocabSize) {
    throw new ModelFormatError(
      file,
      `tokenizer has ${tokens} tokens, the model only ${input.config.vocabSize} embeddings`,
    );
  }
  const unrepresentable = ggufUnrepresentable(input.config);
  if (unrepresentable) throw new ModelFormatError(file, `cannot be written as GGUF: ${unrepresentable}`);
  const tensors = llamaTensorLayout(input.config, input.tiedClassifier).map(({ name, dims }) => ({
    name,
    dims,
    type: storedType(dims, options.dtype),
    data: () => fileOrder(input.config, name, input.tensor(name)),
  }));
  writeGguf(file, llamaMetadata(input, options.dtype), tensors);
}
