import { ModelFormatError } from "../errors.ts";
import { halfToFloat } from "./half.ts";

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

const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/** Parses a safetensors buffer; `file` names it in errors. Throws ModelFormatError on any inconsistency. */
export function readSafetensors(bytes: Uint8Array, file: string): Map<string, SafetensorsTensor> {
  if (bytes.length < 8) throw new ModelFormatError(file, `truncated safetensors: ${bytes.length} bytes, no header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > bytes.length) {
    throw new ModelFormatError(file, `corrupt safetensors header: header length ${headerLength} exceeds the file (${bytes.length} bytes)`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch (error) {
    throw new ModelFormatError(file, `corrupt safetensors header: not valid JSON (${(error as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new ModelFormatError(file, "corrupt safetensors header: not a JSON object");
  }
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
      throw new ModelFormatError(file, `tensor ${name}: unsupported dtype ${JSON.stringify(dtype)} (F32, F16, BF16 are supported)`);
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
      throw new ModelFormatError(file, `tensor ${name}: data_offsets [${begin}, ${end}] outside the ${dataLength} data bytes (truncated file?)`);
    }
    if (end - begin !== count * DTYPE_BYTES[dtype]) {
      throw new ModelFormatError(file, `tensor ${name}: ${end - begin} bytes do not hold shape [${shape}] of ${dtype}`);
    }
    tensors.set(name, { dtype, shape: shape as number[], data: decodeFloats(bytes.subarray(dataStart + begin, dataStart + end), dtype) });
  }
  return tensors;
}

/** Writes float32 tensors as a safetensors buffer, names sorted, so equal tensors give equal bytes. */
export function writeSafetensors(tensors: Map<string, { shape: number[]; data: Float32Array }>, metadata?: Record<string, string>): Uint8Array {
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
    for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
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
