// Each family's random model, written as a Hugging Face folder and as a GGUF, against transformers' forward
// (hf-reference.ts, float64) and across backends. Tolerances, relative to max(1, max |logit|):
//   cpu (float32) vs the float64 reference: 1e-4, at every position, decoded one token at a time;
//   HF form vs GGUF form (f32): identical configs and weights, so identical logits (0);
//   webgpu vs cpu: 1e-4, and the same 24 greedy tokens from both forms on both backends.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend } from "../../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../../node/engine/backend/cpu/cpu-backend.ts";
import { createWebGpuBackend, webgpuAvailable } from "../../../node/engine/backend/webgpu/webgpu-backend.ts";
import { loadModel } from "../../../node/engine/formats/load-model.ts";
import { writeGgufModel } from "../../../node/engine/formats/gguf-write.ts";
import { dequantize, float32Weights, quantizeMatrix } from "../../../node/engine/formats/weight-codec.ts";
import type { LoadedModel } from "../../../node/engine/model/weights.ts";
import {
  familyFixture,
  greedy,
  MODEL_PRESETS,
  maxRelDiff,
  OPTIONS,
  prefillLogits,
  PROMPT,
  relDiff,
  stepLogits,
} from "./fixtures.ts";
import { hfReferenceLogits } from "./hf-reference.ts";

const TOL = 1e-4;
const GREEDY_STEPS = 24;

describe.each(MODEL_PRESETS)("%s", (preset) => {
  const fixture = familyFixture(preset);
  let hf: LoadedModel;
  let gguf: LoadedModel;
  let cpu: Backend;
  let gpus: Backend[] = [];
  beforeAll(async () => {
    hf = await loadModel(fixture.hf);
    gguf = await loadModel(fixture.gguf);
    cpu = createCpuBackend(hf.weights, OPTIONS);
  });
  afterAll(async () => {
    for (const gpu of gpus) await gpu.close();
  });

  it("loads to the same model from its Hugging Face folder and its GGUF", () => {
    expect(gguf.weights.config).toEqual(hf.weights.config);
    const [a, b] = [float32Weights(hf.weights), float32Weights(gguf.weights)];
    expect(b.tokenEmbedding).toEqual(a.tokenEmbedding);
    expect(b.classifier === b.tokenEmbedding).toBe(a.classifier === a.tokenEmbedding);
    expect(b.classifier).toEqual(a.classifier);
    expect(b.finalNorm).toEqual(a.finalNorm);
    b.layers.forEach((layer, l) => expect(layer, `layer ${l}`).toEqual(a.layers[l]));
    expect([hf.qkBasis, gguf.qkBasis]).toEqual(["rotate-half", "rotate-half"]);
  });

  it(`gives transformers' logits at every position on cpu (${TOL})`, async () => {
    const reference = hfReferenceLogits(fixture.hf, PROMPT);
    const stepped = await stepLogits(cpu, PROMPT);
    expect(maxRelDiff(stepped, reference)).toBeLessThan(TOL);
    expect(relDiff(await prefillLogits(cpu, PROMPT), reference.at(-1)!)).toBeLessThan(TOL);
    // The GGUF form gives the same numbers.
    const fromGguf = createCpuBackend(gguf.weights, OPTIONS);
    expect(maxRelDiff(await stepLogits(fromGguf, PROMPT), stepped)).toBe(0);
  });

  it(`gives the cpu backend's logits (${TOL}) and greedy tokens on webgpu, from both forms`, async () => {
    expect(await webgpuAvailable(), "no WebGPU adapter: scripts/setup.sh fetches lavapipe").toBe(true);
    const expected = await greedy(cpu, PROMPT, GREEDY_STEPS);
    const fromGguf = createCpuBackend(gguf.weights, OPTIONS);
    expect(await greedy(fromGguf, PROMPT, GREEDY_STEPS)).toEqual(expected);
    const cpuSteps = await stepLogits(cpu, PROMPT);
    for (const model of [hf, gguf]) {
      const gpu = await createWebGpuBackend(model.weights, OPTIONS);
      gpus.push(gpu);
      expect(maxRelDiff(await stepLogits(gpu, PROMPT), cpuSteps)).toBeLessThan(TOL);
      expect(relDiff(await prefillLogits(gpu, PROMPT), cpuSteps.at(-1)!)).toBeLessThan(TOL);
      expect(await greedy(gpu, PROMPT, GREEDY_STEPS)).toEqual(expected);
      await gpu.close();
    }
    gpus = [];
  });
});

describe("quantized GGUFs of rotate-half families", () => {
  it.each(["qwen2", "gemma2"] as const)("%s: q/k rows move as Q8_0 blocks, nothing decoded", async (preset) => {
    const fixture = familyFixture(preset);
    const file = fixture.gguf.replace(/\.gguf$/, "-q8_0.gguf");
    writeGgufModel(file, fixture.model.input, { dtype: "q8_0" });
    const q8 = await loadModel(file);
    const f32 = await loadModel(fixture.gguf);
    for (const key of ["wq", "wk"] as const) {
      const [stored, exact] = [q8.weights.layers[0][key], f32.weights.layers[0][key]];
      expect(stored.dtype).toBe("q8_0");
      // Each canonical row is the f32 model's row quantized on its own: rows moved whole, blocks intact.
      expect(dequantize(stored)).toEqual(dequantize(quantizeMatrix(dequantize(exact), exact.rows, exact.cols, "q8_0")));
    }
  });
});
