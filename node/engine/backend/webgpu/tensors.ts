// Device buffers: plain storage, and weight matrices padded to vec4 rows and split under the binding limit.
import { floatToHalf } from "../../formats/half.ts";
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

/** One piece of a row-split matrix: rows rowStart .. rowStart + rows - 1. */
export interface MatrixChunk {
  buffer: GPUBuffer;
  rowStart: number;
  rows: number;
}

/**
 * A [rows, cols] weight on the device: each row zero-padded to K4 * 4 columns (vec4 loads), stored as f32 or
 * f16, and split into chunks of whole rows so that no binding exceeds the device's limit.
 */
export interface DeviceMatrix {
  rows: number;
  cols: number;
  K4: number;
  f16: boolean;
  chunks: MatrixChunk[];
  bytes: number;
}

/** Rows of `cols` floats padded to a multiple of 4, as f32 or f16 bits. */
export function padRows(data: Float32Array, rows: number, cols: number, f16: boolean): Float32Array | Uint16Array {
  const ld = pad4(cols);
  if (!f16 && ld === cols) return data;
  const out = f16 ? new Uint16Array(rows * ld) : new Float32Array(rows * ld);
  for (let r = 0; r < rows; r++) {
    const src = data.subarray(r * cols, (r + 1) * cols);
    if (f16) {
      const dst = out as Uint16Array;
      for (let c = 0; c < cols; c++) dst[r * ld + c] = floatToHalf(src[c]);
    } else {
      (out as Float32Array).set(src, r * ld);
    }
  }
  return out;
}

/** Uploads a [rows, cols] row-major matrix (or several stacked, given as parts) split under maxBinding bytes. */
export function uploadMatrix(
  device: GPUDevice,
  label: string,
  parts: readonly Float32Array[],
  cols: number,
  f16: boolean,
  maxBinding: number,
): DeviceMatrix {
  const rows = parts.reduce((n, part) => n + part.length / cols, 0);
  const K4 = pad4(cols) / 4;
  const rowBytes = K4 * 4 * (f16 ? 2 : 4);
  const rowsPerChunk = Math.max(1, Math.floor((maxBinding - 16) / rowBytes));
  const chunks: MatrixChunk[] = [];
  // Walk the stacked parts chunk by chunk without concatenating them (a classifier may be 1 GB).
  let part = 0;
  let partRow = 0;
  for (let rowStart = 0; rowStart < rows; rowStart += rowsPerChunk) {
    const chunkRows = Math.min(rowsPerChunk, rows - rowStart);
    const buffer = storageBuffer(device, `${label}[${rowStart}]`, chunkRows * rowBytes);
    let written = 0;
    while (written < chunkRows) {
      const partRows = parts[part].length / cols;
      const take = Math.min(chunkRows - written, partRows - partRow);
      const slice = parts[part].subarray(partRow * cols, (partRow + take) * cols);
      writeView(device, buffer, written * rowBytes, padRows(slice, take, cols, f16));
      written += take;
      partRow += take;
      if (partRow === partRows) {
        part++;
        partRow = 0;
      }
    }
    chunks.push({ buffer, rowStart, rows: chunkRows });
  }
  return { rows, cols, K4, f16, chunks, bytes: rows * rowBytes };
}
