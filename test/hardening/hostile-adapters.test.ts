// Issue 13, hostile adapter files: each test performs the attack an adversarial review found and shows that the
// load is refused by name (file and field) or read as PEFT reads it, without hanging or exhausting memory.
import { describe, expect, it } from "vitest";
import { loadPeftAdapter } from "../../node/engine/adapter/peft.ts";
import { AdapterError } from "../../node/engine/errors.ts";
import { dragonParts, storiesExpectations, writePeftFolder } from "./peft-folders.ts";

const Q0 = "base_model.model.model.layers.0.self_attn.q_proj";

async function refusal(dir: string, withModel = true): Promise<AdapterError> {
  const error = await loadPeftAdapter(dir, withModel ? await storiesExpectations() : undefined).catch(
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AdapterError);
  return error as AdapterError;
}

describe("rank_pattern / alpha_pattern keys (item 6)", () => {
  it("matches a catastrophic-backtracking key in linear time: it matches nothing, so the defaults hold", async () => {
    const { config, tensors } = await dragonParts();
    // With a backtracking engine, (x+x+)+y against a 30-character module name takes 2^30 steps per module.
    const hostile = { "((.|.)+(.|.)+)+y": 999, "(a|aa)+$": 999 };
    const plain = await loadPeftAdapter(await writePeftFolder(config, tensors));
    const attacked = await loadPeftAdapter(await writePeftFolder({ ...config, alpha_pattern: hostile }, tensors));
    expect(attacked.adapter.id).toBe(plain.adapter.id);
  });

  it("reads a key as PEFT does: (.*\\.)?(key) over the whole module name, alternation inside the group", async () => {
    const { config, tensors } = await dragonParts();
    // Outside a group, "q_proj|layers.3.mlp.up_proj" would match any name ending in up_proj (or starting q_proj).
    const alpha = { "layers\\.[01]\\.self_attn\\.(q|k)_proj|layers\\.3\\.mlp\\.up_proj": 32 };
    const { adapter } = await loadPeftAdapter(await writePeftFolder({ ...config, alpha_pattern: alpha }, tensors));
    const b = (layer: number, module: string) =>
      tensors.get(`base_model.model.model.layers.${layer}.${module}.lora_B.weight`)!.data;
    const r = config.r as number;
    const defaultScale = (config.lora_alpha as number) / r;
    expect(adapter.layers[0].q!.b[5]).toBeCloseTo(b(0, "self_attn.q_proj")[5] * (32 / r), 5);
    expect(adapter.layers[1].k!.b[5]).toBeCloseTo(b(1, "self_attn.k_proj")[5] * (32 / r), 5);
    expect(adapter.layers[3].up!.b[5]).toBeCloseTo(b(3, "mlp.up_proj")[5] * (32 / r), 5);
    expect(adapter.layers[2].q!.b[5]).toBeCloseTo(b(2, "self_attn.q_proj")[5] * defaultScale, 5);
    expect(adapter.layers[2].up!.b[5]).toBeCloseTo(b(2, "mlp.up_proj")[5] * defaultScale, 5);
  });

  it("refuses a key that is not a regular expression, naming the file, the field and the key", async () => {
    const { config, tensors } = await dragonParts();
    const error = await refusal(await writePeftFolder({ ...config, rank_pattern: { "q_proj(": 4 } }, tensors), false);
    expect(error.message).toMatch(
      /adapter_config\.json: rank_pattern key "q_proj\(" is not a usable regular expression/,
    );
  });

  it("refuses lookaround and backreferences (no linear-time match exists) instead of throwing a raw SyntaxError", async () => {
    const { config, tensors } = await dragonParts();
    for (const key of ["(?=q)q_proj", "(q)\\1_proj"]) {
      const error = await refusal(await writePeftFolder({ ...config, alpha_pattern: { [key]: 4 } }, tensors), false);
      expect(error.message).toMatch(/alpha_pattern key .* is not a usable regular expression/);
    }
  });
});

describe("layer indices (items 7 and 14)", () => {
  it("refuses a tensor for layer 99,999,999 before allocating layers, with or without a model", async () => {
    const { config, tensors } = await dragonParts();
    const a = tensors.get(`${Q0}.lora_A.weight`)!;
    const b = tensors.get(`${Q0}.lora_B.weight`)!;
    const far = "base_model.model.model.layers.99999999.self_attn.q_proj";
    const hostile = new Map([
      [`${far}.lora_A.weight`, a],
      [`${far}.lora_B.weight`, b],
    ]);
    const dir = await writePeftFolder(config, hostile);
    const heapBefore = process.memoryUsage().heapUsed;
    expect((await refusal(dir, false)).message).toMatch(
      /layers\.99999999.*layer 99999999 is out of range \(an adapter has at most 4096 layers\)/,
    );
    expect((await refusal(dir, true)).message).toMatch(/layer 99999999 is out of range \(the model has 5 layers\)/);
    // One array slot per layer index would be 100M slots (800 MB); the refusal holds a few KiB at most.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 2 ** 20);
  });

  it("refuses layers.00 next to layers.0 instead of silently dropping one of them", async () => {
    const { config, tensors } = await dragonParts();
    const twin = "base_model.model.model.layers.00.self_attn.q_proj";
    tensors.set(`${twin}.lora_A.weight`, tensors.get(`${Q0}.lora_A.weight`)!);
    tensors.set(`${twin}.lora_B.weight`, tensors.get(`${Q0}.lora_B.weight`)!);
    const error = await refusal(await writePeftFolder(config, tensors));
    expect(error.message).toMatch(
      /layers\.00\.self_attn\.q_proj\.lora_[AB]\.weight: layer index 00 is not written as PyTorch/,
    );
  });
});

describe("scale (item 8)", () => {
  it("refuses lora_alpha 1e300: the scaled B would be infinite and every token 0", async () => {
    const { config, tensors } = await dragonParts();
    const error = await refusal(await writePeftFolder({ ...config, lora_alpha: 1e300 }, tensors));
    expect(error.message).toMatch(/lora_B scaled by lora_alpha 1e\+300 \/ rank 8 .* overflows float32/);
  });

  it("refuses an alpha_pattern value whose scale overflows, naming the module", async () => {
    const { config, tensors } = await dragonParts();
    const error = await refusal(
      await writePeftFolder({ ...config, alpha_pattern: { "layers.2.mlp.down_proj": 1e300 } }, tensors),
    );
    expect(error.message).toMatch(/layer 2 down_proj: lora_B scaled by lora_alpha 1e\+300/);
  });
});
