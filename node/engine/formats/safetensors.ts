import { ModelFormatError } from "../errors.ts";
import { closeModelFile, openModelFile, readBytes, readFloat32 } from "./file-io.ts";
import type { ModelFile } from "./file-io.ts";
import { halfTable } from "./half.ts";
import type { WeightDType, WeightMatrix } from "../model/weights.ts";
import { weightMatrix } from "./weight-codec.ts";

/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: {...} }`, then the tensor bytes
 * (offsets relative to the end of the header). Tensors are read into float32 whatever their stored dtype.
 */
export interface SafetensorsTensor {
  dtype: string;
  shape: number[];
  data: Float32Array;
}

/** The reference reader's bound on the JSON header (safetensors' MAX_HEADER_SIZE). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
const SAFETENSORS_DTYPE: Record<string, WeightDType> = { F32: "f32", F16: "f16", BF16: "bf16" };

/** Where one tensor's bytes lie, relative to the start of the data section. */
export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Validates a header (the JSON after the 8-byte length) against the data section's length and returns each
 * tensor's dtype, shape and byte range. Shared by the in-memory and the positional readers.
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  dataLength: number,
  file: string,
): Map<string, SafetensorsEntry> {
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (error) {
    throw new ModelFormatError(file, `corrupt safetensors header: not valid JSON (${(error as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new ModelFormatError(file, "corrupt safetensors header: not a JSON object");
  }
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const {
      dtype,
      shape,
      data_offsets: offsets,
    } = (entry ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
      throw new ModelFormatError(
        file,
        `tensor ${name}: unsupported dtype ${JSON.stringify(dtype)} (F32, F16, BF16 are supported)`,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new ModelFormatError(file, `tensor ${name}: bad shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      throw new ModelFormatError(file, `tensor ${name}: bad data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLength) {
      throw new ModelFormatError(
        file,
        `tensor ${name}: data_offsets [${begin}, ${end}] outside the ${dataLength} data bytes (truncated file?)`,
      );
    }
    if (end - begin !== count * DTYPE_BYTES[dtype]) {
      throw new ModelFormatError(file, `tensor ${name}: ${end - begin} bytes do not hold shape [${shape}] of ${dtype}`);
    }
    entries.set(name, { dtype, shape: shape as number[], begin, end });
  }
  checkTiling(entries, dataLength, file);
  return entries;
}

/**
 * The tensors' ranges must tile the data section exactly, as the reference reader requires: a gap or trailing
 * bytes would be read (and held) for nothing or hide other content, and overlapping ranges alias two tensors.
 */
function checkTiling(entries: Map<string, SafetensorsEntry>, dataLength: number, file: string): void {
  const sorted = [...entries].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let previous = "the start of the data";
  for (const [name, { begin, end }] of sorted) {
    if (begin < at) {
      throw new ModelFormatError(
        file,
        `tensor ${name}: data_offsets [${begin}, ${end}] overlap ${previous}, which ends at ${at}`,
      );
    }
    if (begin > at) {
      throw new ModelFormatError(
        file,
        `tensor ${name}: data_offsets [${begin}, ${end}] leave bytes ${at}..${begin} after ${previous} to no tensor`,
      );
    }
    at = end;
    previous = `tensor ${name}`;
  }
  if (at !== dataLength) {
    throw new ModelFormatError(
      file,
      `${dataLength - at} trailing bytes after the last tensor: data_offsets end at ${at}, the data section has ${dataLength}`,
    );
  }
}

/** Checks the header length against its bound and the file's size; returns where the data starts. */
function checkHeaderLength(headerLength: number, size: number, file: string): number {
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > size) {
    throw new ModelFormatError(
      file,
      `corrupt safetensors header: header length ${headerLength} exceeds ${8 + headerLength > size ? `the file (${size} bytes)` : `the bound of ${MAX_HEADER_BYTES} bytes`}`,
    );
  }
  return 8 + headerLength;
}

/** Parses a safetensors buffer; `file` names it in errors. Throws ModelFormatError on any inconsistency. */
export function readSafetensors(bytes: Uint8Array, file: string): Map<string, SafetensorsTensor> {
  if (bytes.length < 8)
    throw new ModelFormatError(file, `truncated safetensors: ${bytes.length} bytes, no header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dataStart = checkHeaderLength(Number(view.getBigUint64(0, true)), bytes.length, file);
  const entries = parseSafetensorsHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, file);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, { dtype, shape, begin, end }] of entries) {
    tensors.set(name, { dtype, shape, data: decodeFloats(bytes.subarray(dataStart + begin, dataStart + end), dtype) });
  }
  return tensors;
}

/**
 * A safetensors file read tensor by tensor at its offset: Hugging Face shards are up to several GB, more than
 * one Buffer (or fs.readFileSync) holds. Call close() when done.
 */
export class SafetensorsFile {
  readonly path: string;
  readonly tensors: Map<string, SafetensorsEntry>;
  private readonly file: ModelFile;
  private readonly dataStart: number;

  private constructor(file: ModelFile) {
    this.file = file;
    this.path = file.path;
    if (file.size < 8)
      throw new ModelFormatError(file.path, `truncated safetensors: ${file.size} bytes, no header length`);
    const lengthBytes = readBytes(file, 0, 8, "the header length");
    const headerLength = Number(new DataView(lengthBytes.buffer).getBigUint64(0, true));
    this.dataStart = checkHeaderLength(headerLength, file.size, file.path);
    this.tensors = parseSafetensorsHeader(
      readBytes(file, 8, headerLength, "the header"),
      file.size - this.dataStart,
      file.path,
    );
  }

  /** Opens the file and reads its header only; tensors are read on demand. */
  static open(path: string): SafetensorsFile {
    const file = openModelFile(path);
    try {
      return new SafetensorsFile(file);
    } catch (error) {
      closeModelFile(file);
      throw error;
    }
  }

  /** A 2-D tensor [rows, cols] in its stored precision (F32, F16, BF16 are the dtypes safetensors gives here). */
  readMatrix(name: string): WeightMatrix {
    const entry = this.tensors.get(name);
    if (!entry) throw new ModelFormatError(this.path, `no tensor named ${name}`);
    if (entry.shape.length !== 2)
      throw new ModelFormatError(this.path, `tensor ${name} has shape [${entry.shape}], a matrix needs 2 dimensions`);
    const dtype = SAFETENSORS_DTYPE[entry.dtype];
    const data = readBytes(this.file, this.dataStart + entry.begin, entry.end - entry.begin, `tensor ${name}`);
    return weightMatrix(dtype, entry.shape[0], entry.shape[1], data);
  }

  /** One tensor as float32, whatever its stored dtype. */
  read(name: string): Float32Array {
    const entry = this.tensors.get(name);
    if (!entry) throw new ModelFormatError(this.path, `no tensor named ${name}`);
    if (entry.dtype === "F32")
      return readFloat32(this.file, this.dataStart + entry.begin, (entry.end - entry.begin) / 4, `tensor ${name}`);
    return decodeFloats(
      readBytes(this.file, this.dataStart + entry.begin, entry.end - entry.begin, `tensor ${name}`),
      entry.dtype,
    );
  }

  close(): void {
    closeModelFile(this.file);
  }
}

/** Writes float32 tensors as a safetensors buffer, names sorted, so equal tensors give equal bytes. */
export function writeSafetensors(
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const tensor = tensors.get(name)!;
    header[name] = { dtype: "F32", shape: tensor.shape, data_offsets: [offset, offset + tensor.data.byteLength] };
    offset += tensor.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8); // align the data to 8 bytes, as the reference writer does
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const data = tensors.get(name)!.data;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}

function decodeFloats(raw: Uint8Array, dtype: string): Float32Array {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const count = raw.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(count);
  if (dtype === "F32") {
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
  } else if (dtype === "F16") {
    const table = halfTable();
    for (let i = 0; i < count; i++) out[i] = table[view.getUint16(2 * i, true)];
  } else {
    const bits = new Uint32Array(1);
    const asFloat = new Float32Array(bits.buffer);
    for (let i = 0; i < count; i++) {
      bits[0] = view.getUint16(2 * i, true) << 16;
      out[i] = asFloat[0];
    }
  }
  return out;
}
