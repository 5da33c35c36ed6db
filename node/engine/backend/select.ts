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
  return createWebGpuBackend(weights, options);
}
