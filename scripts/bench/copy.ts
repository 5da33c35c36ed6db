// Device copy bandwidth, measured in the same run as the decode figures: the reference for bandwidth_util_b1.
// Reported as memory traffic (bytes read + bytes written per second), the STREAM "copy" convention.
import type { Backend } from "../../node/engine/backend/backend.ts";
import { openDevice } from "../../node/engine/backend/webgpu/device.ts";

export interface CopyResult {
  gbps: number;
  /** How it was measured, for the report. */
  method: string;
}

/** Best of a few timed copies on the backend's device. */
export async function copyBandwidth(backend: Backend, quick: boolean): Promise<CopyResult> {
  return backend.kind === "webgpu" ? gpuCopy(quick) : cpuCopy(quick);
}

function cpuCopy(quick: boolean): CopyResult {
  const floats = (quick ? 32 : 128) * 2 ** 18; // 32 or 128 MiB
  const src = new Float32Array(floats).fill(1);
  const dst = new Float32Array(floats);
  let best = Infinity;
  for (let i = 0; i < (quick ? 4 : 8); i++) {
    const started = performance.now();
    dst.set(src);
    best = Math.min(best, performance.now() - started);
  }
  return {
    gbps: (2 * src.byteLength) / (best / 1000) / 1e9,
    method: `Float32Array.set of ${src.byteLength / 2 ** 20} MiB, best of ${quick ? 4 : 8}`,
  };
}

/**
 * The Backend interface has no copy hook, so this opens a second device on the same WebGPU adapter and times
 * copyBufferToBuffer there (several copies per submit, waited with onSubmittedWorkDone).
 */
async function gpuCopy(quick: boolean): Promise<CopyResult> {
  const { device, description } = await openDevice(false);
  try {
    const bytes = Math.min((quick ? 64 : 256) * 2 ** 20, device.limits.maxBufferSize);
    const usage = GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const a = device.createBuffer({ size: bytes, usage });
    const b = device.createBuffer({ size: bytes, usage });
    const copies = 4;
    const run = async (): Promise<number> => {
      const encoder = device.createCommandEncoder();
      for (let i = 0; i < copies; i++) encoder.copyBufferToBuffer(i % 2 ? b : a, 0, i % 2 ? a : b, 0, bytes);
      const started = performance.now();
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      return performance.now() - started;
    };
    await run(); // first touch allocates the memory
    let best = Infinity;
    for (let i = 0; i < (quick ? 3 : 6); i++) best = Math.min(best, await run());
    a.destroy();
    b.destroy();
    return {
      gbps: (2 * bytes * copies) / (best / 1000) / 1e9,
      method: `copyBufferToBuffer of ${bytes / 2 ** 20} MiB x ${copies} per submit on a second device of the same adapter (${description}); the Backend interface exposes no copy hook`,
    };
  } finally {
    device.destroy();
  }
}
