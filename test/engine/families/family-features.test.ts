// Each family's distinguishing features, one by one: the engine agrees with transformers (hf-reference.ts) on a
// variant of the random model whose config makes the feature matter at these tiny sizes, and the same engine with
// that one feature switched off disagrees. Agreement within 1e-4 of max(1, max |logit|), disagreement above 1e-3.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createCpuBackend } from "../../../node/engine/backend/cpu/cpu-backend.ts";
import { readSafetensors } from "../../../node/engine/formats/safetensors.ts";
import { loadModel } from "../../../node/engine/formats/load-model.ts";
import { architectureOf, plainArchitecture, type Architecture } from "../../../node/engine/model/config.ts";
import { ropeInverseFrequencies } from "../../../node/engine/model/rope.ts";
import type { LoadedModel, ModelWeights } from "../../../node/engine/model/weights.ts";
import { familyFixture, maxRelDiff, OPTIONS, PROMPT, stepLogits, type ModelPreset } from "./fixtures.ts";
import { hfReferenceLogits } from "./hf-reference.ts";

const AGREE = 1e-4;
const DISAGREE = 1e-3;

/** A copy of the preset's HF folder with config.json edited. */
function variant(preset: ModelPreset, edit: (config: Record<string, unknown>) => void): string {
  const folder = join(mkdtempSync(join(tmpdir(), `openlora-${preset}-variant-`)), "hf");
  cpSync(familyFixture(preset).hf, folder, { recursive: true });
  const config = JSON.parse(readFileSync(join(folder, "config.json"), "utf8"));
  edit(config);
  writeFileSync(join(folder, "config.json"), JSON.stringify(config));
  return folder;
}

/** The model with one architecture field replaced. */
function without(model: LoadedModel, change: Partial<Architecture>): ModelWeights {
  const config = model.weights.config;
  return { ...model.weights, config: { ...config, arch: { ...architectureOf(config), ...change } } };
}

/** Agreement with the reference, and disagreement once `change` switches the feature off. */
async function expectFeature(folder: string, change: Partial<Architecture>): Promise<void> {
  const model = await loadModel(folder);
  const reference = hfReferenceLogits(folder, PROMPT);
  expect(maxRelDiff(await stepLogits(createCpuBackend(model.weights, OPTIONS), PROMPT), reference)).toBeLessThan(AGREE);
  const ablated = await stepLogits(createCpuBackend(without(model, change), OPTIONS), PROMPT);
  expect(maxRelDiff(ablated, reference)).toBeGreaterThan(DISAGREE);
}

describe("Llama 3.x", () => {
  it("rope_scaling llama3: the engine's RoPE frequencies are transformers' _compute_llama3_parameters", async () => {
    const { hf, gguf } = familyFixture("llama3");
    const config = JSON.parse(readFileSync(join(hf, "config.json"), "utf8"));
    const {
      factor,
      low_freq_factor: low,
      high_freq_factor: high,
      original_max_position_embeddings: old,
    } = config.rope_scaling;
    const dim = config.hidden_size / config.num_attention_heads;
    // The formula, from modeling_rope_utils.py, in float64.
    const expected = Array.from({ length: dim / 2 }, (_, i) => {
      const inv = 1 / config.rope_theta ** ((2 * i) / dim);
      const wavelen = (2 * Math.PI) / inv;
      if (wavelen < old / high) return inv;
      if (wavelen > old / low) return inv / factor;
      const smooth = (old / wavelen - low) / (high - low);
      return ((1 - smooth) * inv) / factor + smooth * inv;
    });
    const kinds = expected.map((e, i) => e / (1 / config.rope_theta ** ((2 * i) / dim)));
    expect(
      kinds.some((k) => k === 1) && kinds.some((k) => k === 1 / factor) && kinds.some((k) => k > 1 / factor && k < 1),
    ).toBe(true);
    for (const file of [hf, gguf]) {
      const got = ropeInverseFrequencies((await loadModel(file)).weights.config);
      got.forEach((g, i) => expect(Math.abs(g / expected[i] - 1), `${file} pair ${i}`).toBeLessThan(1e-7));
    }
  });
  it("the scaled frequencies change the output where positions pass the original context", async () => {
    const folder = variant("llama3", (c) => {
      c.rope_scaling = {
        rope_type: "llama3",
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 16,
      };
    });
    await expectFeature(folder, { ropeFreqFactors: null });
  });
  it("ties the classifier to the embedding: no lm_head.weight in the folder, no output.weight in the GGUF", async () => {
    const { hf, gguf } = familyFixture("llama3");
    expect(readSafetensors(readFileSync(join(hf, "model.safetensors")), "x").has("lm_head.weight")).toBe(false);
    for (const file of [hf, gguf]) {
      const { weights } = await loadModel(file);
      expect(weights.classifier).toBe(weights.tokenEmbedding);
    }
    const untied = await loadModel(familyFixture("mistral").hf);
    expect(untied.weights.classifier).not.toBe(untied.weights.tokenEmbedding);
  });
});

describe("Qwen2", () => {
  it("q/k/v biases are added", async () => {
    await expectFeature(familyFixture("qwen2").hf, { qkvBias: false });
  });
});

describe("Qwen3", () => {
  it("q and k are RMS-normed per head before RoPE, with head_dim 12 x 4 heads != hidden 32", async () => {
    const model = await loadModel(familyFixture("qwen3").hf);
    expect([model.weights.config.headDim, model.weights.layers[0].wq.rows, model.weights.layers[0].wo.cols]).toEqual([
      12, 48, 48,
    ]);
    await expectFeature(familyFixture("qwen3").hf, { qkNorm: false });
  });
});

describe("Mistral", () => {
  it("sliding_window applies to every layer", async () => {
    const folder = variant("mistral", (c) => {
      c.sliding_window = 4;
    });
    expect(architectureOf((await loadModel(folder)).weights.config).slidingWindows).toEqual([4, 4]);
    await expectFeature(folder, { slidingWindows: [0, 0] });
  });
  it("sliding_window null is plain LLaMA", async () => {
    const { weights } = await loadModel(familyFixture("mistral").hf);
    expect(weights.config.arch).toBeUndefined();
    expect(architectureOf(weights.config)).toEqual(plainArchitecture(weights.config));
  });
});

describe("Gemma 2", () => {
  const { hf } = familyFixture("gemma2");
  it("norm weights w multiply as 1 + w", async () => {
    const stored = readSafetensors(readFileSync(join(hf, "model.safetensors")), "x");
    const { weights } = await loadModel(hf);
    const w = stored.get("model.layers.1.pre_feedforward_layernorm.weight")!.data;
    expect([...weights.layers[1].ffnNorm]).toEqual([...w].map((x) => Math.fround(1 + x)));
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.05); // random, not all zero
  });
  it("embeddings are scaled by sqrt(hidden_size)", async () => {
    await expectFeature(hf, { embedScale: 1 });
  });
  it("the MLP is GeGLU with PyTorch's tanh approximation", async () => {
    await expectFeature(hf, { activation: "silu" });
  });
  it("even layers attend through a sliding window (5 here)", async () => {
    expect(architectureOf((await loadModel(hf)).weights.config).slidingWindows).toEqual([5, 0]);
    await expectFeature(hf, { slidingWindows: [0, 0] });
  });
  it("query_pre_attn_scalar sets the attention scale", async () => {
    const folder = variant("gemma2", (c) => {
      c.query_pre_attn_scalar = 2;
    });
    await expectFeature(folder, { attnScale: 1 / Math.sqrt(12) });
  });
  it("attention scores and final logits are soft-capped", async () => {
    const folder = variant("gemma2", (c) => {
      c.attn_logit_softcapping = 0.05;
      c.final_logit_softcapping = 0.5;
    });
    await expectFeature(folder, { attnSoftcap: 0 });
    await expectFeature(folder, { finalSoftcap: 0 });
    const logits = await stepLogits(createCpuBackend((await loadModel(folder)).weights, OPTIONS), PROMPT);
    expect(Math.max(...logits.flatMap((row) => [...row].map(Math.abs)))).toBeLessThanOrEqual(0.5);
  });
});
