import type { ModelWeights } from "../model/weights.ts";
import type { Backend, BackendOptions } from "./backend.ts";
import { createCpuBackend } from "./cpu/cpu-backend.ts";
import { webgpuAvailable } from "./webgpu/device.ts";
import { createWebGpuBackend } from "./webgpu/webgpu-backend.ts";

export type BackendChoice = "cpu" | "webgpu" | "auto";
export const BACKEND_CHOICES: readonly BackendChoice[] = ["cpu", "webgpu", "auto"];

/** Creates the backend asked for; "auto" is webgpu where a WebGPU adapter answers, else cpu. */
export async function createBackend(choice: BackendChoice, weights: ModelWeights, options: BackendOptions & { f16?: boolean }): Promise<Backend> {
  if (choice === "cpu") return createCpuBackend(weights, options);
  if (choice === "webgpu" || (await webgpuAvailable())) return createWebGpuBackend(weights, options);
  return createCpuBackend(weights, options);
}
