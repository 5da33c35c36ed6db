// Helpers of the webgpu-kernels-* tests that go beyond test/kernels/harness.ts (which runs single kernels).
import type { SequenceStep } from "../../node/engine/backend/backend.ts";
import type { WebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";

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
