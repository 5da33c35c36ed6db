// Runs single kernels on the WebGPU device for the kernel tests, through the same sites and host-side ops as
// the backend. Also small helpers: seeded random data and tolerance checks.
import { expect } from "vitest";
import { openDevice, type GpuContext } from "../../node/engine/backend/webgpu/device.ts";
import {
  ParamArena,
  Pipelines,
  StepEncoder,
  type KernelName,
  type KernelVariant,
  type Site,
} from "../../node/engine/backend/webgpu/kernels.ts";
import { storageBuffer } from "../../node/engine/backend/webgpu/tensors.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";

export interface Harness {
  ctx: GpuContext;
  device: GPUDevice;
  pipelines: Pipelines;
  /** A storage buffer holding data (or zeros of `bytes`). */
  buffer(data: ArrayBufferView | number): GPUBuffer;
  /** Defines the sites, encodes what `encode` records into one submit, waits for it, and throws on any error. */
  run(
    sites: { kernel: KernelName; variant?: KernelVariant; buffers: GPUBuffer[] }[],
    encode: (enc: StepEncoder, sites: Site[]) => void,
  ): Promise<void>;
  readF32(buffer: GPUBuffer, count: number): Promise<Float32Array>;
  readI32(buffer: GPUBuffer, count: number): Promise<Int32Array>;
  close(): void;
}

let shared: Promise<Harness> | null = null;

/** One device per test file (the f16 feature enabled where the device has it). */
export function harness(): Promise<Harness> {
  shared ??= create();
  return shared;
}

async function create(): Promise<Harness> {
  const ctx = await openDevice(true);
  const { device } = ctx;
  const pipelines = new Pipelines(device);
  const read = async (buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> => {
    const staging = device.createBuffer({
      size: Math.ceil(bytes / 4) * 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(buffer, 0, staging, 0, staging.size);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const copy = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    return copy;
  };
  return {
    ctx,
    device,
    pipelines,
    buffer: (data) =>
      typeof data === "number"
        ? storageBuffer(device, "test", data)
        : storageBuffer(device, "test", data.byteLength, data),
    async run(defs, encode) {
      device.pushErrorScope("validation");
      const arena = new ParamArena(device);
      const sites = defs.map((d, i) => arena.define(`${d.kernel}${i}`, pipelines.get(d.kernel, d.variant), d.buffers));
      arena.finish();
      const enc = new StepEncoder(device, arena);
      encode(enc, sites);
      enc.submit(device.queue);
      await device.queue.onSubmittedWorkDone();
      const error = await device.popErrorScope();
      arena.destroy();
      if (error) throw new Error(error.message);
    },
    readF32: async (buffer, count) => new Float32Array(await read(buffer, count * 4)),
    readI32: async (buffer, count) => new Int32Array(await read(buffer, count * 4)),
    close: () => device.destroy(),
  };
}

/** count uniform values in [-scale, scale) from a seeded generator. */
export function random(count: number, seed: number, scale = 1): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: count }, () => (2 * rng() - 1) * scale);
}

/** Rows of `cols` copied into rows of `ld` (zero padding), the layout of vec4-read activations. */
export function padded(data: Float32Array, rows: number, cols: number, ld: number): Float32Array {
  const out = new Float32Array(rows * ld);
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * cols, (r + 1) * cols), r * ld);
  return out;
}

/** Columns [offset, offset + cols) of each row of a [rows, ld] array. */
export function unpadded(data: Float32Array, rows: number, cols: number, ld: number, offset = 0): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * ld + offset, r * ld + offset + cols), r * cols);
  return out;
}

/** max |actual - expected|, and the same relative to max(1e-6, max |expected|). */
export function difference(actual: Float32Array, expected: Float32Array): { abs: number; rel: number } {
  expect(actual.length).toBe(expected.length);
  let abs = 0;
  let scale = 1e-6;
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(actual[i])) return { abs: Infinity, rel: Infinity };
    abs = Math.max(abs, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return { abs, rel: abs / scale };
}

/** Asserts max |actual - expected| <= tol x max |expected| (the stated tolerance of every kernel test). */
export function expectClose(actual: Float32Array, expected: Float32Array, tol: number, what = ""): void {
  const { rel } = difference(actual, expected);
  expect(rel, `${what} relative max difference`).toBeLessThanOrEqual(tol);
}
