// Running single WGSL kernels in tests: a device, sites bound to buffers, one submit, and the read back, with
// deterministic random data and a float comparison. The kernel tests hold each kernel variant to a plain
// TypeScript reference on the host.
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
