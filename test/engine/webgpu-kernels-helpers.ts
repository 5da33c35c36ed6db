// Running single WGSL kernels in tests: a device, sites bound to buffers, one submit, and the read back, with
// deterministic random data and a float comparison. The kernel tests hold each kernel variant to a plain
// TypeScript reference on the host.
import type { SequenceStep } from "../../node/engine/backend/backend.ts";
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
import type { WebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";

export interface KernelRig {
  ctx: GpuContext;
  pipelines: Pipelines;
  /** A storage buffer holding `data` (or `bytes` zeros). */
  buffer(data: Float32Array | Uint32Array | number): GPUBuffer;
  /** Defines the sites, records `encode` into one submit, waits for it. */
  run(
    sites: { kernel: KernelName; variant?: KernelVariant; buffers: GPUBuffer[] }[],
    encode: (enc: StepEncoder, sites: Site[]) => void,
  ): Promise<void>;
  read(buffer: GPUBuffer, floats?: number): Promise<Float32Array>;
  close(): void;
}

export async function kernelRig(): Promise<KernelRig> {
  const ctx = await openDevice(true);
  const { device } = ctx;
  const pipelines = new Pipelines(device);
  const owned: GPUBuffer[] = [];
  return {
    ctx,
    pipelines,
    buffer(data) {
      const b =
        typeof data === "number" ? storageBuffer(device, "t", data) : storageBuffer(device, "t", data.byteLength, data);
      owned.push(b);
      return b;
    },
    async run(sites, encode) {
      const arena = new ParamArena(device);
      const made = sites.map((s, i) => arena.define(`${s.kernel}${i}`, pipelines.get(s.kernel, s.variant), s.buffers));
      arena.finish();
      device.pushErrorScope("validation");
      const enc = new StepEncoder(device, arena);
      encode(enc, made);
      enc.submit(device.queue);
      await device.queue.onSubmittedWorkDone();
      const error = await device.popErrorScope();
      arena.destroy();
      if (error) throw new Error(`kernel run: ${error.message}`);
    },
    async read(buffer, floats) {
      const bytes = floats === undefined ? buffer.size : floats * 4;
      const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const enc = device.createCommandEncoder();
      enc.copyBufferToBuffer(buffer, 0, staging, 0, bytes);
      device.queue.submit([enc.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const out = new Float32Array(staging.getMappedRange().slice(0));
      staging.destroy();
      return out;
    },
    close() {
      for (const b of owned) b.destroy();
      device.destroy();
    },
  };
}

/** n uniform values in [-scale, scale) from a seeded generator. */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => (2 * rng() - 1) * scale);
}

/**
 * The kernel of every dispatch of one greedy step of `steps` on the backend, in order (its step profile; the
 * adapter needs timestamp-query, which lavapipe has): the tests' proof that a variant really ran.
 */
export async function kernelsOfStep(backend: WebGpuBackend, steps: readonly SequenceStep[]): Promise<string[]> {
  const greedy = steps.map(() => ({ temperature: 0, topK: 0, topP: 1 }));
  const { profile } = await backend.profileSample(steps, greedy, new Float32Array(steps.length));
  if (profile.source !== "timestamps") throw new Error("kernelsOfStep: the adapter has no timestamp queries");
  return profile.dispatches.map((d) => d.kernel);
}
