// The segment SGMV kernels (sgmv-*-segment.wgsl) inside the backend, on stories260K against the cpu backend:
// logits within LOGIT_TOL (the parity tolerance of webgpu.test.ts), and the step profile shows they ran. The
// kernels themselves are held to the host reference in test/kernels/sgmv.test.ts (both variants).
import { describe, expect, it } from "vitest";
import type { SequenceStep } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import type { SgmvKind } from "../../node/engine/backend/webgpu/ops.ts";
import { createWebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { InvalidOptionError } from "../../node/engine/errors.ts";
import { relDiff } from "../../scripts/gpu/parity-lib.ts";
import { demoAdapter, stories } from "../helpers/stories.ts";
import { kernelsOfStep } from "./webgpu-kernels-helpers.ts";

const LOGIT_TOL = 1e-4;

describe("the backend with the segment SGMV kernels", () => {
  it("matches the cpu backend on a batch of a 20-row segment, one-row segments and rows without adapter", async () => {
    const model = await stories();
    const options = { numBlocks: 32, blockSize: 16, adapterSlots: 3, maxRank: 16 };
    const gpu = await createWebGpuBackend(model.weights, { ...options, sgmv: "segments" });
    const cpu = createCpuBackend(model.weights, options);
    try {
      expect(gpu.kernels.sgmv).toBe("segments");
      for (const [slot, name] of (["dragon", "ocean", "robot"] as const).entries()) {
        const adapter = await demoAdapter(name, options.maxRank);
        await gpu.setAdapter(slot, adapter);
        await cpu.setAdapter(slot, adapter);
      }
      const prompt = Array.from({ length: 20 }, (_, i) => 1 + ((i * 37) % 500));
      const steps: SequenceStep[] = [
        { tokens: prompt, position: 0, blockTable: [0, 1], slot: 0 },
        { tokens: prompt.slice(0, 3), position: 0, blockTable: [2], slot: 1 },
        { tokens: prompt.slice(0, 2), position: 0, blockTable: [3], slot: -1 },
        { tokens: prompt.slice(0, 1), position: 0, blockTable: [4], slot: 2 },
        { tokens: prompt.slice(0, 5), position: 0, blockTable: [5], slot: 0 },
      ];
      expect(relDiff(await gpu.forward(steps), await cpu.forward(steps))).toBeLessThanOrEqual(LOGIT_TOL);
      // A decode step of the same sequences: five rows, four segments.
      const decode = steps.map((s) => ({ ...s, tokens: [300], position: s.tokens.length }));
      expect(relDiff(await gpu.forward(decode), await cpu.forward(decode))).toBeLessThanOrEqual(LOGIT_TOL);
      const kernels = await kernelsOfStep(
        gpu,
        decode.map((s) => ({ ...s, position: s.position + 1 })),
      );
      expect(kernels).toContain("sgmv-shrink-segment");
      expect(kernels).toContain("sgmv-expand-segment");
    } finally {
      await gpu.close();
    }
  });

  it("refuses an SGMV kernel it does not have, by name", async () => {
    const model = await stories();
    const options = { numBlocks: 4, blockSize: 16, adapterSlots: 1, maxRank: 4, sgmv: "fast" as SgmvKind };
    await expect(createWebGpuBackend(model.weights, options)).rejects.toThrow(InvalidOptionError);
    await expect(createWebGpuBackend(model.weights, options)).rejects.toThrow(/sgmv: unknown sgmv kernel "fast"/);
  });
});
