// PEFT LoRA adapters on each family, as PEFT writes them for the Hugging Face model (base_model.model.model.layers.
// N.self_attn.q_proj.lora_A.weight ..., q/k lora_B rows in the checkpoint's rotate-half order). The unmerged
// adapter (the engine's y = W x + B A x, per slot, on cpu and webgpu) must equal the model merged the way PEFT's
// merge_and_unload does, in HF space (W += scale B A on the HF tensors), and transformers' forward of that merged
// folder. Tolerance 1e-4 relative to max(1, max |logit|); an adapter must move the logits by more than 1e-3.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeAdapter } from "../../../node/engine/adapter/canonical.ts";
import { loadPeftAdapter, type AdapterExpectations } from "../../../node/engine/adapter/peft.ts";
import { writeRandomPeftAdapter } from "../../../node/engine/adapter/random-adapter.ts";
import { createCpuBackend } from "../../../node/engine/backend/cpu/cpu-backend.ts";
import { createWebGpuBackend } from "../../../node/engine/backend/webgpu/webgpu-backend.ts";
import { AdapterError } from "../../../node/engine/errors.ts";
import { loadModel } from "../../../node/engine/formats/load-model.ts";
import { readSafetensors, writeSafetensors } from "../../../node/engine/formats/safetensors.ts";
import { architectureOf } from "../../../node/engine/model/config.ts";
import type { LoadedModel } from "../../../node/engine/model/weights.ts";
import { openEngine } from "../../../node/engine/runtime/open-engine.ts";
import { familyFixture, maxRelDiff, MODEL_PRESETS, OPTIONS, PROMPT, stepLogits, type ModelPreset } from "./fixtures.ts";
import { hfReferenceLogits } from "./hf-reference.ts";

const TOL = 1e-4;
const RANK = 4;

const expectations = (model: LoadedModel, over: Partial<AdapterExpectations> = {}): AdapterExpectations => ({
  config: model.weights.config,
  name: model.name,
  qkBasis: model.qkBasis,
  maxRank: OPTIONS.maxRank,
  ...over,
});

/** A random PEFT folder for the preset's model (every projection, lora_alpha 2r), trained "on" test/<preset>. */
async function peftFolder(preset: ModelPreset, seed = 3): Promise<string> {
  const dir = join(mkdtempSync(join(tmpdir(), `openlora-${preset}-lora-`)), "lora");
  const model = await loadModel(familyFixture(preset).hf);
  await writeRandomPeftAdapter(dir, model.weights.config, { rank: RANK, seed, baseModel: `test/${preset}` });
  return dir;
}

/** The HF folder with the adapter merged as PEFT merges it: W += (lora_alpha / r) B A on each HF tensor. */
function mergedFolder(preset: ModelPreset, adapterDir: string): string {
  const folder = join(mkdtempSync(join(tmpdir(), `openlora-${preset}-merged-`)), "hf");
  cpSync(familyFixture(preset).hf, folder, { recursive: true });
  const config = JSON.parse(readFileSync(join(adapterDir, "adapter_config.json"), "utf8"));
  const scale = config.lora_alpha / config.r;
  const lora = readSafetensors(readFileSync(join(adapterDir, "adapter_model.safetensors")), "lora");
  const file = join(folder, "model.safetensors");
  const base = new Map(
    [...readSafetensors(readFileSync(file), file)].map(([k, t]) => [
      k,
      { shape: t.shape, data: Float32Array.from(t.data) },
    ]),
  );
  for (const [key, a] of lora) {
    if (!key.endsWith(".lora_A.weight")) continue;
    const b = lora.get(key.replace("lora_A", "lora_B"))!;
    const target = base.get(key.replace("base_model.model.", "").replace(".lora_A.weight", ".weight"))!;
    const [outDim, inDim] = target.shape;
    for (let o = 0; o < outDim; o++) {
      for (let i = 0; i < inDim; i++) {
        let sum = 0;
        for (let r = 0; r < config.r; r++) sum += b.data[o * config.r + r] * a.data[r * inDim + i];
        target.data[o * inDim + i] += scale * sum;
      }
    }
  }
  writeFileSync(file, writeSafetensors(base));
  return folder;
}

describe.each(MODEL_PRESETS)("%s", (preset) => {
  it("one canonical adapter from the HF and the GGUF form, its header naming the architecture family", async () => {
    const dir = await peftFolder(preset);
    const [hf, gguf] = [await loadModel(familyFixture(preset).hf), await loadModel(familyFixture(preset).gguf)];
    const a = await loadPeftAdapter(dir, expectations(hf));
    const b = await loadPeftAdapter(dir, expectations(gguf));
    expect(b.adapter.id).toBe(a.adapter.id);
    const family = architectureOf(hf.weights.config).family;
    expect(family).toBe(
      { llama3: "llama", mistral: "llama", qwen2: "qwen2", qwen3: "qwen3", gemma2: "gemma2" }[preset],
    );
    expect(decodeAdapter(a.encoded, "x").family).toBe(family);
    const headerLength = new DataView(a.encoded.buffer, a.encoded.byteOffset).getUint32(8, true);
    expect(JSON.parse(new TextDecoder().decode(a.encoded.subarray(12, 12 + headerLength))).family).toBe(family);
  });

  it(`unmerged (cpu and webgpu) equals merged in HF space and transformers' forward of it (${TOL}); it changes the output`, async () => {
    const dir = await peftFolder(preset);
    const hf = await loadModel(familyFixture(preset).hf);
    const { adapter } = await loadPeftAdapter(dir, expectations(hf));
    const cpu = createCpuBackend(hf.weights, OPTIONS);
    await cpu.setAdapter(1, adapter);
    const unmerged = await stepLogits(cpu, PROMPT, 1);
    const merged = mergedFolder(preset, dir);
    const mergedLogits = await stepLogits(createCpuBackend((await loadModel(merged)).weights, OPTIONS), PROMPT);
    expect(maxRelDiff(unmerged, mergedLogits)).toBeLessThan(TOL);
    expect(maxRelDiff(unmerged, hfReferenceLogits(merged, PROMPT))).toBeLessThan(TOL);
    expect(maxRelDiff(unmerged, await stepLogits(cpu, PROMPT))).toBeGreaterThan(1e-3);
    // The GGUF form with the same adapter, on webgpu.
    const gguf = await loadModel(familyFixture(preset).gguf);
    const gpu = await createWebGpuBackend(gguf.weights, OPTIONS);
    try {
      await gpu.setAdapter(0, (await loadPeftAdapter(dir, expectations(gguf))).adapter);
      expect(maxRelDiff(await stepLogits(gpu, PROMPT, 0), unmerged)).toBeLessThan(TOL);
    } finally {
      await gpu.close();
    }
  });
});

describe("PEFT adapters the engine cannot serve are refused by key", () => {
  async function refusal(
    preset: ModelPreset,
    edit: (config: Record<string, unknown>) => void,
    over: Partial<AdapterExpectations> = {},
  ): Promise<string> {
    const dir = await peftFolder(preset);
    const file = join(dir, "adapter_config.json");
    const config = JSON.parse(readFileSync(file, "utf8"));
    edit(config);
    writeFileSync(file, JSON.stringify(config));
    const model = await loadModel(familyFixture(preset).hf);
    const error = await loadPeftAdapter(dir, expectations(model, over)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdapterError);
    return (error as Error).message.replace(dir, "<dir>");
  }
  it("modules_to_save (whole trained modules)", async () => {
    expect(await refusal("qwen2", (c) => void (c.modules_to_save = ["lm_head", "embed_tokens"]))).toBe(
      'adapter <dir>/adapter_config.json: modules_to_save ["lm_head","embed_tokens"] is not supported (the adapter carries whole trained copies of these modules)',
    );
  });
  it("LoRA on lm_head or embed_tokens", async () => {
    expect(await refusal("llama3", (c) => void (c.target_modules = ["q_proj", "lm_head"]))).toBe(
      'adapter <dir>/adapter_config.json: target_modules lists "lm_head": LoRA on lm_head is not supported (only the q,k,v,o,gate,up,down projections)',
    );
    expect(await refusal("gemma2", (c) => void (c.target_modules = ".*(embed_tokens|q_proj)"))).toBe(
      'adapter <dir>/adapter_config.json: target_modules ".*(embed_tokens|q_proj)" matches embed_tokens: LoRA on embed_tokens is not supported',
    );
  });
  it("DoRA", async () => {
    expect(await refusal("mistral", (c) => void (c.use_dora = true))).toBe(
      "adapter <dir>/adapter_config.json: use_dora true is not supported (DoRA rescales the weights by a learned magnitude)",
    );
  });
  it("another base model, unless the model is given that name as an alias", async () => {
    const other = (c: Record<string, unknown>) => void (c.base_model_name_or_path = "Qwen/Qwen2.5-0.5B-Instruct");
    expect(await refusal("qwen2", other)).toBe(
      'adapter <dir>: base model mismatch: trained on "Qwen/Qwen2.5-0.5B-Instruct", the loaded model is "test/qwen2"; give the model that name as an alias if it is the same model',
    );
    const dir = await peftFolder("qwen2");
    const file = join(dir, "adapter_config.json");
    const config = JSON.parse(readFileSync(file, "utf8"));
    other(config);
    writeFileSync(file, JSON.stringify(config));
    const model = await loadModel(familyFixture("qwen2").hf);
    await expect(
      loadPeftAdapter(dir, expectations(model, { aliases: ["Qwen2.5-0.5B-Instruct"] })),
    ).resolves.toBeDefined();
  });
  it("target_modules as a regex or all-linear select what PEFT selects", async () => {
    const dir = await peftFolder("qwen3");
    const file = join(dir, "adapter_config.json");
    const model = await loadModel(familyFixture("qwen3").hf);
    const config = JSON.parse(readFileSync(file, "utf8"));
    for (const targets of [
      "all-linear",
      ".*\\.(q|k|v|o|gate|up|down)_proj",
      ["self_attn.q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    ]) {
      writeFileSync(file, JSON.stringify({ ...config, target_modules: targets }));
      expect((await loadPeftAdapter(dir, expectations(model))).adapter.targets).toEqual([
        "q",
        "k",
        "v",
        "o",
        "gate",
        "up",
        "down",
      ]);
    }
    writeFileSync(file, JSON.stringify({ ...config, target_modules: ".*\\.mlp\\..*" }));
    await expect(loadPeftAdapter(dir, expectations(model))).rejects.toThrow(
      /targets [qkvo]_proj, which target_modules does not list/,
    );
  });
  it("canonical bytes of another family's adapter, even when every shape fits", async () => {
    // qwen2 and llama3 random models have the same shapes here: only the family tells them apart.
    const qwen = await loadModel(familyFixture("qwen2").hf);
    const { encoded } = await loadPeftAdapter(await peftFolder("qwen2"), expectations(qwen));
    const opened = await openEngine({ model: await loadModel(familyFixture("llama3").hf), backend: "cpu", maxRank: 8 });
    try {
      await expect(opened.engine.adapters.add(encoded)).rejects.toThrow(
        /made for a qwen2 model, this is a llama model/,
      );
    } finally {
      await opened.close();
    }
  });
});
