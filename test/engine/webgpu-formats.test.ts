// The webgpu backend on every weight format it keeps on the device (f32, f16, bf16, Q8_0, Q4_0, Q4_K, Q6_K),
// against the cpu reference on the same blocks dequantized: scripts/gpu/parity-lib.ts writes each format's
// GGUF, loads it, and runs both backends along the same tokens. Tolerance: PARITY_TOL (1e-4) x max(1, max |cpu
// logit|) at every step (both compute in float32 on identical values; only the order of the sums differs).
// Memory: the bytes the backend holds for weights equal the file's tensor bytes within 5% (blocks stay blocks).
import { describe, expect, it } from "vitest";
import { webgpuAvailable } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { ALL_WEIGHT_DTYPES } from "../../node/engine/formats/weight-codec.ts";
import { formatParity, PARITY_TOL } from "../../scripts/gpu/parity-lib.ts";

describe("webgpu weight formats against the cpu reference", () => {
  for (const dtype of ALL_WEIGHT_DTYPES) {
    it(`${dtype}: logits within ${PARITY_TOL}, weights held as the file's bytes`, async () => {
      expect(await webgpuAvailable(), "no WebGPU adapter: scripts/setup.sh fetches lavapipe").toBe(true);
      const r = await formatParity(dtype, 6);
      expect(r.maxRelDiff).toBeLessThanOrEqual(PARITY_TOL);
      expect(r.greedyAgree).toBe(r.steps);
      expect(Math.abs(r.deviceWeightBytes / r.fileTensorBytes - 1)).toBeLessThanOrEqual(0.05);
    });
  }
});
