// GGUF v2/v3 container reader: metadata, tensor infos, and tensors dequantized to float32 one at a time.
// The header is parsed through a small window that slides over the file; tensors are read at their offsets,
// so a multi-GB file never sits in memory whole.
import { ModelFormatError } from "../errors.ts";
import { closeModelFile, openModelFile, readInto } from "./file-io.ts";
import type { ModelFile } from "./file-io.ts";
import {
  GGML_DTYPE,
  GGML_TYPE,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_TYPE,
  ggmlBlock,
  ggmlTypeName,
} from "./gguf-types.ts";
import type { WeightMatrix } from "../model/weights.ts";
import { decodeBlocks, weightMatrix } from "./weight-codec.ts";
import type { GgufMetadata, GgufMetadataEntry, GgufValue, GgufValueType } from "./gguf-types.ts";

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension, so an [out, in] matrix has dims [in, out]. */
  dims: number[];
  type: number;
  /** Absolute position of the first byte in the file. */
  offset: number;
  /** Element count (product of dims). */
  elements: number;
  /** Bytes in the file; NaN for types this engine cannot decode (refused when the tensor is read). */
  byteLength: number;
}

/** Header reads go through this window; most headers fit in one, huge vocabularies slide it a few times. */
const WINDOW = 1 << 20;
/** Tensors are converted in chunks of this many bytes, so F16/Q8_0 decoding needs no second full-size buffer. */
const CHUNK = 8 << 20;
const MAX_DIMS = 4; // GGML_MAX_DIMS

/** A forward-only little-endian reader over the file for the header. */
class HeaderCursor {
  private readonly file: ModelFile;
  private window = new Uint8Array(0);
  private view = new DataView(this.window.buffer);
  private windowStart = 0;
  position = 0;

  constructor(file: ModelFile) {
    this.file = file;
  }

  get remaining(): number {
    return this.file.size - this.position;
  }

  /** Makes [position, position + n) available in the window and returns its offset there. */
  private take(n: number, what: string): number {
    if (n > this.remaining) {
      throw new ModelFormatError(
        this.file.path,
        `truncated GGUF: ${what} at byte ${this.position} needs ${n} bytes, file has ${this.file.size}`,
      );
    }
    const end = this.position + n;
    if (this.position < this.windowStart || end > this.windowStart + this.window.length) {
      const length = Math.min(Math.max(n, WINDOW), this.file.size - this.position);
      this.window = new Uint8Array(length);
      readInto(this.file, this.position, this.window, what);
      this.view = new DataView(this.window.buffer);
      this.windowStart = this.position;
    }
    const at = this.position - this.windowStart;
    this.position = end;
    return at;
  }

  // Each reader calls take() before touching this.view: take() may slide the window and replace the view.
  u8(what: string): number {
    const at = this.take(1, what);
    return this.view.getUint8(at);
  }
  i8(what: string): number {
    const at = this.take(1, what);
    return this.view.getInt8(at);
  }
  u16(what: string): number {
    const at = this.take(2, what);
    return this.view.getUint16(at, true);
  }
  i16(what: string): number {
    const at = this.take(2, what);
    return this.view.getInt16(at, true);
  }
  u32(what: string): number {
    const at = this.take(4, what);
    return this.view.getUint32(at, true);
  }
  i32(what: string): number {
    const at = this.take(4, what);
    return this.view.getInt32(at, true);
  }
  f32(what: string): number {
    const at = this.take(4, what);
    return this.view.getFloat32(at, true);
  }
  f64(what: string): number {
    const at = this.take(8, what);
    return this.view.getFloat64(at, true);
  }
  u64(what: string): bigint {
    const at = this.take(8, what);
    return this.view.getBigUint64(at, true);
  }
  i64(what: string): bigint {
    const at = this.take(8, what);
    return this.view.getBigInt64(at, true);
  }

  /** A uint64 that must fit a JS number and stay below `limit` (counts and lengths bounded by the file). */
  count(what: string, limit: number): number {
    const value = this.u64(what);
    if (value > BigInt(limit)) {
      throw new ModelFormatError(
        this.file.path,
        `corrupt GGUF: ${what} is ${value}, more than the ${limit} the rest of the file can hold`,
      );
    }
    return Number(value);
  }

  string(what: string): string {
    const length = this.count(`${what} length`, this.remaining);
    const at = this.take(length, what);
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(this.window.subarray(at, at + length));
    } catch {
      throw new ModelFormatError(this.file.path, `corrupt GGUF: ${what} is not valid UTF-8`);
    }
  }
}

/** 64-bit integers as numbers when exact, as bigint beyond 2^53. */
function narrow(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/**
 * Bounds on metadata values, so a hostile header costs bounded memory and stack: one array holds at most
 * MAX_ARRAY_ITEMS (the largest vocabularies and merge lists are under a million), all arrays together at most
 * MAX_METADATA_ITEMS, and arrays nest at most MAX_ARRAY_DEPTH deep (llama.cpp writes none nested): 150M items
 * or 100k levels would exhaust the heap or the stack before the file could be refused.
 */
export const MAX_ARRAY_ITEMS = 1 << 22;
export const MAX_METADATA_ITEMS = 1 << 23;
export const MAX_ARRAY_DEPTH = 2;
/** Metadata keys accepted (real files carry tens). */
export const MAX_METADATA_KEYS = 1 << 16;

/** The fewest bytes one value of a type takes in the file (a string: its 8-byte length). */
const MIN_VALUE_BYTES: Record<number, number> = {
  [GGUF_TYPE.uint16]: 2,
  [GGUF_TYPE.int16]: 2,
  [GGUF_TYPE.uint32]: 4,
  [GGUF_TYPE.int32]: 4,
  [GGUF_TYPE.float32]: 4,
  [GGUF_TYPE.uint64]: 8,
  [GGUF_TYPE.int64]: 8,
  [GGUF_TYPE.float64]: 8,
  [GGUF_TYPE.string]: 8,
  [GGUF_TYPE.array]: 12,
};

/** What the metadata read so far has used of MAX_METADATA_ITEMS. */
interface ItemBudget {
  items: number;
}

function readValue(
  cursor: HeaderCursor,
  type: number,
  what: string,
  path: string,
  budget: ItemBudget,
  depth = 0,
): GgufMetadataEntry {
  switch (type) {
    case GGUF_TYPE.uint8:
      return { type, value: cursor.u8(what) };
    case GGUF_TYPE.int8:
      return { type, value: cursor.i8(what) };
    case GGUF_TYPE.uint16:
      return { type, value: cursor.u16(what) };
    case GGUF_TYPE.int16:
      return { type, value: cursor.i16(what) };
    case GGUF_TYPE.uint32:
      return { type, value: cursor.u32(what) };
    case GGUF_TYPE.int32:
      return { type, value: cursor.i32(what) };
    case GGUF_TYPE.float32:
      return { type, value: cursor.f32(what) };
    case GGUF_TYPE.float64:
      return { type, value: cursor.f64(what) };
    case GGUF_TYPE.uint64:
      return { type, value: narrow(cursor.u64(what)) };
    case GGUF_TYPE.int64:
      return { type, value: narrow(cursor.i64(what)) };
    case GGUF_TYPE.bool: {
      const byte = cursor.u8(what);
      if (byte > 1) throw new ModelFormatError(path, `corrupt GGUF: ${what} is a bool with value ${byte}`);
      return { type, value: byte === 1 };
    }
    case GGUF_TYPE.string:
      return { type, value: cursor.string(what) };
    case GGUF_TYPE.array: {
      if (depth >= MAX_ARRAY_DEPTH) {
        throw new ModelFormatError(
          path,
          `metadata ${what}: arrays nested more than ${MAX_ARRAY_DEPTH} deep are not accepted`,
        );
      }
      const itemType = cursor.u32(`${what} item type`);
      // What the rest of the file can hold after the 8-byte length, at the item type's smallest size.
      const fit = Math.floor(Math.max(0, cursor.remaining - 8) / (MIN_VALUE_BYTES[itemType] ?? 1));
      const length = cursor.count(`${what} length`, fit);
      if (length > MAX_ARRAY_ITEMS) {
        throw new ModelFormatError(
          path,
          `metadata ${what} has ${length} items, more than the ${MAX_ARRAY_ITEMS} an array may hold`,
        );
      }
      budget.items += length;
      if (budget.items > MAX_METADATA_ITEMS) {
        throw new ModelFormatError(
          path,
          `metadata ${what}: the header's arrays hold more than the ${MAX_METADATA_ITEMS} items accepted in all`,
        );
      }
      const items: GgufValue[] = new Array(length);
      for (let i = 0; i < length; i++) {
        items[i] = readValue(cursor, itemType, `${what}[${i}]`, path, budget, depth + 1).value;
      }
      return { type, itemType: itemType as GgufValueType, value: items };
    }
    default:
      throw new ModelFormatError(path, `corrupt GGUF: ${what} has unknown value type ${type}`);
  }
}

/** An open GGUF file: its header parsed, tensors read on demand. Call close() when done. */
export class GgufReader {
  readonly path: string;
  readonly version: number;
  readonly alignment: number;
  readonly metadata: GgufMetadata;
  readonly tensors: Map<string, GgufTensorInfo>;
  /** Where the tensor data section starts (tensor offsets in the file are relative to it). */
  readonly dataOffset: number;
  private readonly file: ModelFile;

  private constructor(file: ModelFile) {
    this.file = file;
    this.path = file.path;
    const path = file.path;
    const cursor = new HeaderCursor(file);
    const magic = cursor.u32("magic");
    if (magic !== GGUF_MAGIC) {
      throw new ModelFormatError(
        path,
        `not a GGUF file: magic 0x${magic.toString(16).padStart(8, "0")}, expected "GGUF"`,
      );
    }
    const version = cursor.u32("version");
    if (version === 1) throw new ModelFormatError(path, "GGUF version 1 is not supported (v2 and v3 are)");
    if (version !== 2 && version !== 3) {
      // A big-endian file shows its small version number byte-swapped (3 reads as 0x03000000).
      throw new ModelFormatError(
        path,
        version > 0xffff
          ? `big-endian GGUF (version field 0x${version.toString(16)}) is not supported`
          : `unsupported GGUF version ${version} (v2 and v3 are supported)`,
      );
    }
    this.version = version;
    const tensorCount = cursor.count("tensor count", cursor.remaining);
    const kvCount = cursor.count("metadata count", cursor.remaining);
    if (kvCount > MAX_METADATA_KEYS) {
      throw new ModelFormatError(path, `metadata count ${kvCount} exceeds the ${MAX_METADATA_KEYS} keys accepted`);
    }
    this.metadata = new Map();
    const budget: ItemBudget = { items: 0 };
    for (let i = 0; i < kvCount; i++) {
      const key = cursor.string(`metadata key ${i}`);
      const type = cursor.u32(`type of ${key}`);
      if (this.metadata.has(key)) throw new ModelFormatError(path, `corrupt GGUF: metadata key ${key} appears twice`);
      this.metadata.set(key, readValue(cursor, type, key, path, budget));
    }
    const alignmentEntry = this.metadata.get("general.alignment");
    const alignment = alignmentEntry === undefined ? GGUF_DEFAULT_ALIGNMENT : alignmentEntry.value;
    if (
      typeof alignment !== "number" ||
      !Number.isInteger(alignment) ||
      alignment <= 0 ||
      (alignment & (alignment - 1)) !== 0
    ) {
      throw new ModelFormatError(path, `corrupt GGUF: general.alignment ${String(alignment)} is not a power of two`);
    }
    this.alignment = alignment;
    const infos: GgufTensorInfo[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = cursor.string(`tensor ${i} name`);
      const nDims = cursor.u32(`tensor ${name} dimension count`);
      if (nDims < 1 || nDims > MAX_DIMS)
        throw new ModelFormatError(path, `corrupt GGUF: tensor ${name} has ${nDims} dimensions (1..${MAX_DIMS})`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(cursor.count(`tensor ${name} dimension ${d}`, Number.MAX_SAFE_INTEGER));
      const type = cursor.u32(`tensor ${name} type`);
      const relative = cursor.count(`tensor ${name} offset`, Number.MAX_SAFE_INTEGER);
      const elements = dims.reduce((a, b) => a * b, 1);
      const block = ggmlBlock(type);
      let byteLength = NaN;
      if (block) {
        if (dims[0] % block.elements !== 0) {
          throw new ModelFormatError(
            path,
            `tensor ${name}: ${ggmlTypeName(type)} needs the first dimension to be a multiple of ${block.elements}, got [${dims}]`,
          );
        }
        byteLength = (elements / block.elements) * block.bytes;
      }
      if (relative % alignment !== 0)
        throw new ModelFormatError(
          path,
          `corrupt GGUF: tensor ${name} offset ${relative} is not aligned to ${alignment}`,
        );
      infos.push({ name, dims, type, offset: relative, elements, byteLength });
    }
    this.dataOffset = Math.ceil(cursor.position / alignment) * alignment;
    this.tensors = new Map();
    for (const info of infos) {
      if (this.tensors.has(info.name))
        throw new ModelFormatError(path, `corrupt GGUF: tensor ${info.name} appears twice`);
      info.offset += this.dataOffset;
      if (info.offset + (Number.isNaN(info.byteLength) ? 0 : info.byteLength) > file.size) {
        throw new ModelFormatError(
          path,
          `truncated GGUF: tensor ${info.name} needs bytes ${info.offset}..${info.offset + info.byteLength}, file has ${file.size}`,
        );
      }
      this.tensors.set(info.name, info);
    }
  }

  /** Opens and parses the header; a malformed or truncated header throws ModelFormatError naming the file. */
  static open(path: string): GgufReader {
    const file = openModelFile(path);
    try {
      return new GgufReader(file);
    } catch (error) {
      closeModelFile(file);
      throw error;
    }
  }

  close(): void {
    closeModelFile(this.file);
  }

  /**
   * A 2-D tensor as a matrix in its stored precision: ggml's [in, out] dims are row-major [out, in] rows of
   * dims[0] elements, exactly the WeightMatrix layout, so the bytes are kept as they are.
   */
  readMatrix(name: string): WeightMatrix {
    const info = this.tensors.get(name);
    if (!info) throw new ModelFormatError(this.path, `no tensor named ${name}`);
    const dtype = GGML_DTYPE[info.type];
    if (dtype === undefined) {
      throw new ModelFormatError(
        this.path,
        `tensor ${name} has type ${ggmlTypeName(info.type)}, which this engine does not read (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K are supported)`,
      );
    }
    if (info.dims.length !== 2)
      throw new ModelFormatError(this.path, `tensor ${name} has ${info.dims.length} dimensions, a matrix needs 2`);
    const data = new Uint8Array(info.byteLength);
    readInto(this.file, info.offset, data, `tensor ${name}`);
    return weightMatrix(dtype, info.dims[1], info.dims[0], data);
  }

  /** One tensor as float32 in ggml's flat order (row-major with dims[0] contiguous). */
  readTensor(name: string): Float32Array {
    const info = this.tensors.get(name);
    if (!info) throw new ModelFormatError(this.path, `no tensor named ${name}`);
    const block = ggmlBlock(info.type);
    if (!block) {
      throw new ModelFormatError(
        this.path,
        `tensor ${name} has type ${ggmlTypeName(info.type)}, which this engine does not read (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K are supported)`,
      );
    }
    const out = new Float32Array(info.elements);
    if (info.type === GGML_TYPE.F32) {
      readInto(this.file, info.offset, new Uint8Array(out.buffer), `tensor ${name}`);
      return out;
    }
    // Chunks of whole blocks, decoded into their place in `out`.
    const blocksPerChunk = Math.max(1, Math.floor(CHUNK / block.bytes));
    const totalBlocks = info.elements / block.elements;
    const scratch = new Uint8Array(Math.min(totalBlocks, blocksPerChunk) * block.bytes);
    for (let first = 0; first < totalBlocks; first += blocksPerChunk) {
      const blocks = Math.min(blocksPerChunk, totalBlocks - first);
      const bytes = scratch.subarray(0, blocks * block.bytes);
      readInto(this.file, info.offset + first * block.bytes, bytes, `tensor ${name}`);
      decodeBlocks(GGML_DTYPE[info.type], bytes, out, first * block.elements);
    }
    return out;
  }
}

/** Typed access to metadata, throwing ModelFormatError naming the file and key when absent or mistyped. */
export function ggufString(reader: GgufReader, key: string): string | undefined {
  const entry = reader.metadata.get(key);
  if (entry === undefined) return undefined;
  if (typeof entry.value !== "string")
    throw new ModelFormatError(reader.path, `metadata ${key} should be a string, got ${describe(entry)}`);
  return entry.value;
}

export function ggufNumber(reader: GgufReader, key: string): number | undefined {
  const entry = reader.metadata.get(key);
  if (entry === undefined) return undefined;
  if (typeof entry.value !== "number")
    throw new ModelFormatError(reader.path, `metadata ${key} should be a number, got ${describe(entry)}`);
  return entry.value;
}

export function ggufArray(reader: GgufReader, key: string): GgufValue[] | undefined {
  const entry = reader.metadata.get(key);
  if (entry === undefined) return undefined;
  if (!Array.isArray(entry.value))
    throw new ModelFormatError(reader.path, `metadata ${key} should be an array, got ${describe(entry)}`);
  return entry.value;
}

function describe(entry: GgufMetadataEntry): string {
  return Array.isArray(entry.value)
    ? `an array of ${entry.value.length}`
    : `${typeof entry.value} ${String(entry.value).slice(0, 40)}`;
}
