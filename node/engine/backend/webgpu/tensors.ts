// Device buffers: plain storage, and weight matrices in their file's format, split under the binding limit.
import { floatsToHalves } from "../../formats/half.ts";
import { DTYPE_BLOCK, rowBytes } from "../../formats/weight-codec.ts";
import type { WeightDType, WeightMatrix } from "../../model/weights.ts";
import { pad4 } from "./kernels.ts";

/** A storage buffer of at least `bytes` (rounded up to 16), zero-filled, optionally initialized. */
export function storageBuffer(
  device: GPUDevice,
  label: string,
  bytes: number,
  data?: ArrayBufferView,
  extraUsage = 0,
): GPUBuffer {
  const size = Math.max(16, Math.ceil(bytes / 16) * 16);
  const buffer = device.createBuffer({
    label,
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extraUsage,
  });
  if (data) writeView(device, buffer, 0, data);
  return buffer;
}

/** writeBuffer of any typed array view (byte length a multiple of 4). */
export function writeView(device: GPUDevice, buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
  device.queue.writeBuffer(buffer, offset, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
}

/** One piece of a row-split matrix: rows rowStart .. rowStart + rows - 1, in one weight format. */
export interface MatrixChunk {
  buffer: GPUBuffer;
  rowStart: number;
  rows: number;
  /** How the rows are stored (kernels/weights/<format>.wgsl reads them). */
  format: WeightDType;
  /** Where the block scales begin, in 32-bit words (the formats that keep them apart: q8_0, q4_0, q6_k). */
  sOff: number;
}

/**
 * A [rows, cols] weight on the device in its file's format (float32 rows may be stored as f16 on request): rows
 * of f32/f16/bf16 zero-padded to K4 * 4 columns, quantized rows as their blocks (kernels/weights/ states each
 * layout), split into chunks of whole rows so that no binding exceeds the device's limit. Parts of different
 * formats (a file may mix them) never share a chunk.
 */
export interface DeviceMatrix {
  rows: number;
  cols: number;
  K4: number;
  chunks: MatrixChunk[];
  /** Bytes the chunks hold. */
  bytes: number;
}

/** Block formats whose 2-byte f16 scale moves to a region of its own: where it sits in the file's block. */
const SCALE_AT: Partial<Record<WeightDType, number>> = { q8_0: 0, q4_0: 0, q6_k: 208 };

/** Bytes a row takes on the device (scales included). */
export function deviceRowBytes(format: WeightDType, cols: number, K4: number): number {
  if (format === "f32") return 16 * K4;
  if (format === "f16" || format === "bf16") return 8 * K4;
  return rowBytes(format, cols);
}

/**
 * Rows first .. first + count - 1 of m in `format` (m's own, or f16 for an f32 matrix): the quant region and,
 * for SCALE_AT formats, the scales (two bytes a block, padded to a word).
 */
export function deviceRows(
  m: WeightMatrix,
  format: WeightDType,
  first: number,
  count: number,
  K4: number,
): { quants: Uint8Array; scales: Uint8Array | null } {
  const src = m.data.subarray(first * rowBytes(m.dtype, m.cols), (first + count) * rowBytes(m.dtype, m.cols));
  const scaleAt = SCALE_AT[format];
  if (scaleAt !== undefined) {
    const block = DTYPE_BLOCK[format].bytes;
    const blocks = src.length / block;
    const quants = new Uint8Array(blocks * (block - 2));
    const scales = new Uint8Array(Math.ceil(blocks / 2) * 4);
    for (let b = 0; b < blocks; b++) {
      const at = b * block;
      scales[2 * b] = src[at + scaleAt];
      scales[2 * b + 1] = src[at + scaleAt + 1];
      const from = scaleAt === 0 ? at + 2 : at;
      quants.set(src.subarray(from, from + block - 2), b * (block - 2));
    }
    return { quants, scales };
  }
  if (format === "q4_k") return { quants: src.slice(), scales: null };
  // Element formats: rows padded to 4 * K4 elements.
  const size = format === "f32" ? 4 : 2;
  const ld = 4 * K4 * size;
  const out = new Uint8Array(count * ld);
  if (m.dtype === format) {
    const srcRow = m.cols * size;
    for (let r = 0; r < count; r++) out.set(src.subarray(r * srcRow, (r + 1) * srcRow), r * ld);
  } else {
    // f32 rows stored as f16 (the backend's f16 option).
    const halves = new Uint16Array(out.buffer);
    const row = new Float32Array(m.cols);
    for (let r = 0; r < count; r++) {
      new Uint8Array(row.buffer).set(src.subarray(r * m.cols * 4, (r + 1) * m.cols * 4));
      floatsToHalves(row, halves.subarray((r * ld) / 2, (r * ld) / 2 + m.cols));
    }
  }
  return { quants: out, scales: null };
}

/**
 * Uploads a matrix (several stacked parts of one width, given as parts) in their formats, split under
 * maxBinding bytes. f16 stores float32 parts as f16.
 */
export function uploadMatrix(
  device: GPUDevice,
  label: string,
  parts: readonly WeightMatrix[],
  options: { maxBinding: number; f16?: boolean },
): DeviceMatrix {
  const cols = parts[0].cols;
  const K4 = pad4(cols) / 4;
  const chunks: MatrixChunk[] = [];
  let rowStart = 0;
  let bytes = 0;
  for (const part of parts) {
    if (part.cols !== cols)
      throw new RangeError(`webgpu: ${label} stacks matrices of ${cols} and ${part.cols} columns`);
    const format: WeightDType = part.dtype === "f32" && options.f16 ? "f16" : part.dtype;
    const perRow = deviceRowBytes(format, cols, K4);
    // A scale region may add 3 bytes of padding, and storageBuffer rounds up to 16.
    const rowsPerChunk = Math.max(1, Math.floor((options.maxBinding - 32) / perRow));
    for (let first = 0; first < part.rows; first += rowsPerChunk) {
      const count = Math.min(rowsPerChunk, part.rows - first);
      const { quants, scales } = deviceRows(part, format, first, count, K4);
      const size = quants.length + (scales?.length ?? 0);
      const buffer = storageBuffer(device, `${label}[${rowStart + first}]`, size);
      writeView(device, buffer, 0, quants);
      if (scales) writeView(device, buffer, quants.length, scales);
      chunks.push({ buffer, rowStart: rowStart + first, rows: count, format, sOff: quants.length / 4 });
      bytes += buffer.size;
    }
    rowStart += part.rows;
  }
  return { rows: rowStart, cols, K4, chunks, bytes };
}
