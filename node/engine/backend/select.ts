import type { ModelWeights } from "../model/weights.ts";
import type { Backend, BackendOptions } from "./backend.ts";
import { createCpuBackend } from "./cpu/cpu-backend.ts";
import { createSimdBackend, simdUnsupported } from "./simd/simd-backend.ts";
import { findAdapter, isSoftwareAdapter } from "./webgpu/device.ts";
import { createWebGpuBackend } from "./webgpu/webgpu-backend.ts";

export type BackendChoice = "cpu" | "webgpu" | "simd" | "auto";
export const BACKEND_CHOICES: readonly BackendChoice[] = ["cpu", "webgpu", "simd", "auto"];

export interface CreateBackendOptions extends BackendOptions {
  /** webgpu: store the large weights as f16. */
  f16?: boolean;
  /** simd: worker threads (default: the machine's available parallelism). */
  threads?: number;
  /**
   * On a hardware GPU, the sizes named true here come from the device instead (webgpu-backend.ts: what its memory
   * and binding limits hold, up to a full context and a slot for each of `sequences`); elsewhere numBlocks and
   * adapterSlots stand. A software adapter shares the host's memory with everything else: it keeps them too.
   */
  deviceSizing?: { sequences: number; numBlocks: boolean; adapterSlots: boolean };
}

/** What "auto" picks: webgpu on a real GPU, simd when the only adapter is a software one or there is none. */
export async function autoBackend(): Promise<"webgpu" | "simd"> {
  const adapter = await findAdapter();
  // A software rasterizer's WebGPU adapter loses to our own CPU backend.
  return adapter && !isSoftwareAdapter(adapter) ? "webgpu" : "simd";
}

/**
 * Creates the backend asked for; "auto" resolves through autoBackend, and takes webgpu (or else cpu) for a model
 * whose architecture the simd kernels do not compute.
 */
export async function createBackend(
  choice: BackendChoice,
  weights: ModelWeights,
  options: CreateBackendOptions,
): Promise<Backend> {
  let kind = choice === "auto" ? await autoBackend() : choice;
  if (choice === "auto" && kind === "simd" && simdUnsupported(weights) !== null) {
    kind = (await findAdapter()) ? "webgpu" : "cpu";
  }
  if (kind === "cpu") return createCpuBackend(weights, options);
  if (kind === "simd") return createSimdBackend(weights, options);
  const { deviceSizing, ...given } = options;
  if (deviceSizing === undefined || !deviceSized(await findAdapter())) return createWebGpuBackend(weights, given);
  return createWebGpuBackend(weights, {
    ...given,
    numBlocks: deviceSizing.numBlocks ? undefined : given.numBlocks,
    adapterSlots: deviceSizing.adapterSlots ? undefined : given.adapterSlots,
    sequences: deviceSizing.sequences,
  });
}

/** Whether the webgpu backend sizes its KV pool and adapter slots from this adapter's memory: a hardware one. */
export function deviceSized(adapter: GPUAdapter | null): boolean {
  return adapter !== null && !isSoftwareAdapter(adapter);
}
