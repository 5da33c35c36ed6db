// The backend's prefill through the tiled matmul with f16 stages (matmulAccumulate) on stories260K against the
// cpu backend, within F16_LOGIT_TOL (the tolerance of f16-stored weights in webgpu.test.ts); by-weights keeps
// float32 weights in f32. The kernel itself is held to the reference in test/kernels/matmul.test.ts.
import { describe, expect, it } from "vitest";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import { createWebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { relDiff } from "../../scripts/gpu/parity-lib.ts";
import { stories } from "../helpers/stories.ts";

const F16_LOGIT_TOL = 5e-3;

describe("the backend's tiled matmul in f16", () => {
  it(`a prefill through f16 stages stays within ${F16_LOGIT_TOL}; by-weights keeps f32 weights in f32`, async () => {
    const model = await stories();
    const options = { numBlocks: 8, blockSize: 16, adapterSlots: 0, maxRank: 0, matmul: "tiled" as const };
    const cpu = createCpuBackend(model.weights, options);
    const step = { tokens: [1, 403, 261, 378, 92, 77, 301, 15], position: 0, blockTable: [0], slot: -1 };
    const ref = await cpu.forward([step]);
    const logits: Record<string, Float32Array> = {};
    for (const matmulAccumulate of ["f16", "f32", "by-weights"] as const) {
      const gpu = await createWebGpuBackend(model.weights, { ...options, matmulAccumulate });
      try {
        expect(gpu.kernels.matmulAccumulate).toBe(matmulAccumulate);
        logits[matmulAccumulate] = await gpu.forward([step]);
      } finally {
        await gpu.close();
      }
    }
    const diff = relDiff(logits.f16, ref);
    expect(diff).toBeLessThanOrEqual(F16_LOGIT_TOL);
    expect(diff).toBeGreaterThan(relDiff(logits.f32, ref));
    // stories260K's weights are float32: by-weights runs them with f32 stages, bit for bit.
    expect(Array.from(logits["by-weights"])).toEqual(Array.from(logits.f32));
  });
});
