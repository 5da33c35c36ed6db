import type { ModelWeights } from "../model/weights.ts";
import type { Backend, BackendOptions } from "./backend.ts";
import { createCpuBackend } from "./cpu/cpu-backend.ts";
import { createSimdBackend, simdUnsupported } from "./simd/simd-backend.ts";
import { findAdapter } from "./webgpu/device.ts";
import { createWebGpuBackend } from "./webgpu/webgpu-backend.ts";

export type BackendChoice = "cpu" | "webgpu" | "simd" | "auto";
export const BACKEND_CHOICES: readonly BackendChoice[] = ["cpu", "webgpu", "simd", "auto"];

export interface CreateBackendOptions extends BackendOptions {
  /** webgpu: store the large weights as f16. */
  f16?: boolean;
  /** simd: worker threads (default: the machine's available parallelism). */
  threads?: number;
}

/** Software rasterizers that expose a WebGPU adapter: a CPU backend of our own beats them. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader/i;

/** What "auto" picks: webgpu on a real GPU, simd when the only adapter is a software one or there is none. */
export async function autoBackend(): Promise<"webgpu" | "simd"> {
  const adapter = await findAdapter();
  if (!adapter) return "simd";
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const software =
    info.isFallbackAdapter === true ||
    SOFTWARE_ADAPTER.test(`${info.vendor} ${info.architecture} ${info.device} ${info.description}`);
  return software ? "simd" : "webgpu";
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
