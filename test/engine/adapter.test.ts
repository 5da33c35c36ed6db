import { mkdtemp, readFile, writeFile, cp } from "node:fs/promises";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeAdapter, encodeAdapter } from "../../node/engine/adapter/canonical.ts";
import { loadPeftAdapter, peftTensorKey, type AdapterExpectations } from "../../node/engine/adapter/peft.ts";
import { writeRandomPeftAdapter } from "../../node/engine/adapter/random-adapter.ts";
import { AdapterError } from "../../node/engine/errors.ts";
import { readSafetensors, writeSafetensors } from "../../node/engine/formats/safetensors.ts";
import { permuteRotateHalfRows, unpermuteRotateHalfRows } from "../../node/engine/model/rope-basis.ts";
import { STORIES_DIR, stories } from "../helpers/stories.ts";

const DRAGON = join(STORIES_DIR, "adapters", "dragon");

async function expectations(overrides: Partial<AdapterExpectations> = {}): Promise<AdapterExpectations> {
  const model = await stories();
  return { config: model.weights.config, name: model.name, qkBasis: model.qkBasis, maxRank: 64, ...overrides };
}

/** A copy of the dragon adapter with its config and tensors edited, in a fresh folder. */
async function editedDragon(edit: {
  config?: (c: Record<string, unknown>) => void;
  tensors?: (t: Map<string, { shape: number[]; data: Float32Array }>) => void;
  rawTensors?: Uint8Array;
}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "openlora-adapter-"));
  const config = JSON.parse(await readFile(join(DRAGON, "adapter_config.json"), "utf8"));
  edit.config?.(config);
  await writeFile(join(dir, "adapter_config.json"), JSON.stringify(config));
  const tensors = readSafetensors(await readFile(join(DRAGON, "adapter_model.safetensors")), "dragon");
  const plain = new Map([...tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
  edit.tensors?.(plain);
  await writeFile(join(dir, "adapter_model.safetensors"), edit.rawTensors ?? writeSafetensors(plain));
  return dir;
}

async function expectAdapterError(
  dir: string,
  pattern: RegExp,
  overrides: Partial<AdapterExpectations> = {},
): Promise<void> {
  const error = await loadPeftAdapter(dir, await expectations(overrides)).catch((e) => e);
  expect(error).toBeInstanceOf(AdapterError);
  expect(error.message).toMatch(pattern);
}

describe("PEFT adapters", () => {
  it("loads the demo adapter with the scale folded into B", async () => {
    const { adapter } = await loadPeftAdapter(DRAGON, await expectations());
    const raw = readSafetensors(await readFile(join(DRAGON, "adapter_model.safetensors")), "dragon");
    expect(adapter.rank).toBe(8);
    expect(adapter.targets).toEqual(["q", "k", "v", "o", "gate", "up", "down"]);
    const b = raw.get(peftTensorKey(2, "up", "B"))!.data;
    expect(adapter.layers[2].up!.b).toEqual(b.map((x) => x * 2)); // lora_alpha 16 / r 8
    expect(adapter.id).toMatch(/^0x[0-9a-f]{64}$/);
  });

  it("scales by alpha / sqrt(r) with use_rslora", async () => {
    const dir = await editedDragon({
      config: (c) => {
        c.use_rslora = true;
      },
    });
    const { adapter } = await loadPeftAdapter(dir, await expectations());
    const raw = readSafetensors(await readFile(join(DRAGON, "adapter_model.safetensors")), "dragon");
    const b = raw.get(peftTensorKey(0, "q", "B"))!.data;
    expect(adapter.layers[0].q!.b).toEqual(b.map((x) => x * (16 / Math.sqrt(8))));
  });

  it("honours rank_pattern and alpha_pattern per module", async () => {
    // alpha 6 / rank 2 = 3: neither the default scale (16 / 8 = 2) nor a mix of a pattern and a default.
    const dir = await editedDragon({
      config: (c) => {
        c.rank_pattern = { "layers.1.mlp.up_proj": 2 };
        c.alpha_pattern = { "layers.1.mlp.up_proj": 6 };
      },
      tensors: (t) => {
        const a = t.get(peftTensorKey(1, "up", "A"))!;
        const b = t.get(peftTensorKey(1, "up", "B"))!;
        t.set(peftTensorKey(1, "up", "A"), { shape: [2, a.shape[1]], data: a.data.slice(0, 2 * a.shape[1]) });
        t.set(peftTensorKey(1, "up", "B"), { shape: [b.shape[0], 2], data: b.data.filter((_, i) => i % 8 < 2) });
      },
    });
    const { adapter } = await loadPeftAdapter(dir, await expectations());
    expect(adapter.layers[1].up!.rank).toBe(2);
    expect(adapter.layers[0].up!.rank).toBe(8);
    const b = readSafetensors(await readFile(join(dir, "adapter_model.safetensors")), "x").get(
      peftTensorKey(1, "up", "B"),
    )!.data;
    expect(adapter.layers[1].up!.b).toEqual(b.map((x) => x * (6 / 2)));
    const dragonB = readSafetensors(await readFile(join(DRAGON, "adapter_model.safetensors")), "dragon").get(
      peftTensorKey(0, "up", "B"),
    )!.data;
    expect(adapter.layers[0].up!.b).toEqual(dragonB.map((x) => x * 2)); // other modules keep 16 / 8
  });

  it("scales by an alpha_pattern alone (rank r), with a bare module name matching every layer", async () => {
    const dir = await editedDragon({
      config: (c) => {
        c.alpha_pattern = { gate_proj: 4, "layers.3.self_attn.v_proj": 40 };
      },
    });
    const { adapter } = await loadPeftAdapter(dir, await expectations());
    const raw = readSafetensors(await readFile(join(DRAGON, "adapter_model.safetensors")), "dragon");
    const scaled = (layer: number, target: "gate" | "v" | "up", scale: number) =>
      raw.get(peftTensorKey(layer, target, "B"))!.data.map((x) => x * scale);
    for (let layer = 0; layer < 5; layer++) {
      expect(adapter.layers[layer].gate!.rank).toBe(8);
      expect(adapter.layers[layer].gate!.b, `layer ${layer} gate`).toEqual(scaled(layer, "gate", 4 / 8));
      expect(adapter.layers[layer].up!.b, `layer ${layer} up`).toEqual(scaled(layer, "up", 16 / 8));
      expect(adapter.layers[layer].v!.b, `layer ${layer} v`).toEqual(scaled(layer, "v", layer === 3 ? 40 / 8 : 16 / 8));
    }
  });

  it("applies the patterns under use_rslora too: alpha / sqrt(rank) of the module", async () => {
    const dir = await editedDragon({
      config: (c) => {
        c.use_rslora = true;
        c.rank_pattern = { "layers.2.self_attn.o_proj": 2 };
        c.alpha_pattern = { "layers.2.self_attn.o_proj": 3 };
      },
      tensors: (t) => {
        const a = t.get(peftTensorKey(2, "o", "A"))!;
        const b = t.get(peftTensorKey(2, "o", "B"))!;
        t.set(peftTensorKey(2, "o", "A"), { shape: [2, a.shape[1]], data: a.data.slice(0, 2 * a.shape[1]) });
        t.set(peftTensorKey(2, "o", "B"), { shape: [b.shape[0], 2], data: b.data.filter((_, i) => i % 8 < 2) });
      },
    });
    const { adapter } = await loadPeftAdapter(dir, await expectations());
    const b = readSafetensors(await readFile(join(dir, "adapter_model.safetensors")), "x").get(
      peftTensorKey(2, "o", "B"),
    )!.data;
    expect(adapter.layers[2].o!.rank).toBe(2);
    expect(adapter.layers[2].o!.b).toEqual(b.map((x) => x * (3 / Math.sqrt(2))));
  });

  it("gives the same id for the same tensors re-saved in another order, and a different id for other tensors", async () => {
    const a = (await loadPeftAdapter(DRAGON)).adapter.id;
    const resaved = await editedDragon({
      tensors: (t) => {
        const entries = [...t].reverse();
        t.clear();
        for (const [k, v] of entries) t.set(k, v);
      },
    });
    expect((await loadPeftAdapter(resaved)).adapter.id).toBe(a);
    const ocean = (await loadPeftAdapter(join(STORIES_DIR, "adapters", "ocean"))).adapter.id;
    expect(ocean).not.toBe(a);
  });

  it("round-trips through the canonical encoding, and refuses tampered bytes", async () => {
    const { adapter, encoded } = await loadPeftAdapter(DRAGON, await expectations());
    const decoded = decodeAdapter(encoded, "disk");
    expect(decoded).toEqual(adapter);
    expect(encodeAdapter(decoded)).toEqual(encoded);
    expect(() => decodeAdapter(encoded.subarray(0, encoded.length - 3), "peer")).toThrow(/truncated|trailing/);
    const nan = Uint8Array.from(encoded);
    new DataView(nan.buffer).setFloat32(nan.length - 4, NaN, true);
    expect(() => decodeAdapter(nan, "peer")).toThrow(/NaN/);
    expect(() => decodeAdapter(new Uint8Array(20), "peer")).toThrow(/bad magic/);
  });

  it("undoes the rotate-half permutation on q/k lora_B for Hugging Face models", async () => {
    const model = await stories();
    const canonical = (await loadPeftAdapter(DRAGON, await expectations())).adapter;
    const dir = await editedDragon({
      tensors: (t) => {
        for (let l = 0; l < model.weights.config.nLayers; l++) {
          for (const [target, heads] of [
            ["q", model.weights.config.nHeads],
            ["k", model.weights.config.nKvHeads],
          ] as const) {
            const b = t.get(peftTensorKey(l, target, "B"))!;
            t.set(peftTensorKey(l, target, "B"), { shape: b.shape, data: permuteRotateHalfRows(b.data, heads, 8) });
          }
        }
      },
    });
    const hf = (await loadPeftAdapter(dir, await expectations({ qkBasis: "rotate-half" }))).adapter;
    expect(hf.layers.map((l) => [l.q!.b, l.k!.b])).toEqual(canonical.layers.map((l) => [l.q!.b, l.k!.b]));
    const w = Float32Array.from({ length: 64 * 3 }, (_, i) => i);
    expect(unpermuteRotateHalfRows(permuteRotateHalfRows(w, 8, 3), 8, 3)).toEqual(w);
  });

  it("writes random adapters that load and differ by seed", async () => {
    const model = await stories();
    const dir = await mkdtemp(join(tmpdir(), "openlora-random-"));
    await writeRandomPeftAdapter(join(dir, "a"), model.weights.config, {
      rank: 4,
      seed: 1,
      baseModel: model.name,
      targets: ["q", "down"],
    });
    await writeRandomPeftAdapter(join(dir, "b"), model.weights.config, {
      rank: 4,
      seed: 2,
      baseModel: model.name,
      targets: ["q", "down"],
    });
    const a = (await loadPeftAdapter(join(dir, "a"), await expectations())).adapter;
    const b = (await loadPeftAdapter(join(dir, "b"), await expectations())).adapter;
    expect(a.targets).toEqual(["q", "down"]);
    expect(a.id).not.toBe(b.id);
  });

  describe("refuses bad adapters with an error naming the problem", () => {
    it("a shape that does not fit the base model", async () => {
      const dir = await editedDragon({
        tensors: (t) => {
          const a = t.get(peftTensorKey(0, "v", "A"))!;
          t.set(peftTensorKey(0, "v", "A"), { shape: [8, 32], data: a.data.slice(0, 256) });
        },
      });
      await expectAdapterError(dir, /lora_A of layer 0 v_proj has shape \[8,32\], expected \[8, 64\]/);
    });
    it("a rank over the configured maximum", async () => {
      await expectAdapterError(DRAGON, /rank 8 of layer \d+ \w+_proj exceeds the configured maximum 4/, { maxRank: 4 });
    });
    it("an unknown target module", async () => {
      const dir = await editedDragon({
        config: (c) => {
          c.target_modules = ["q_proj", "lm_head"];
        },
      });
      await expectAdapterError(dir, /target_modules lists "lm_head": LoRA on lm_head is not supported/);
      const other = await editedDragon({
        config: (c) => {
          c.target_modules = ["q_proj", "dense"];
        },
      });
      await expectAdapterError(other, /unknown target module "dense"/);
    });
    it("a missing lora_A or lora_B", async () => {
      await expectAdapterError(
        await editedDragon({ tensors: (t) => t.delete(peftTensorKey(3, "gate", "A")) }),
        /missing lora_A for layer 3 gate_proj/,
      );
      await expectAdapterError(
        await editedDragon({ tensors: (t) => t.delete(peftTensorKey(4, "o", "B")) }),
        /missing lora_B for layer 4 o_proj/,
      );
    });
    it("NaN or infinite values", async () => {
      await expectAdapterError(
        await editedDragon({
          tensors: (t) => {
            t.get(peftTensorKey(2, "k", "B"))!.data[5] = NaN;
          },
        }),
        /lora_B of layer 2 k_proj contains NaN/,
      );
      await expectAdapterError(
        await editedDragon({
          tensors: (t) => {
            t.get(peftTensorKey(1, "q", "A"))!.data[0] = Infinity;
          },
        }),
        /lora_A of layer 1 q_proj contains NaN or infinite/,
      );
    });
    it("a corrupt safetensors header", async () => {
      const bytes = new Uint8Array(64);
      new DataView(bytes.buffer).setBigUint64(0, 40n, true);
      bytes.set(new TextEncoder().encode("{not json"), 8);
      const dir = await editedDragon({ rawTensors: bytes });
      const error = await loadPeftAdapter(dir, await expectations()).catch((e) => e);
      expect(error.message).toMatch(/adapter_model\.safetensors: corrupt safetensors header: not valid JSON/);
      const huge = new Uint8Array(16);
      new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
      const error2 = await loadPeftAdapter(await editedDragon({ rawTensors: huge }), await expectations()).catch(
        (e) => e,
      );
      expect(error2.message).toMatch(/header length \d+ exceeds the file/);
    });
    it("a base model mismatch", async () => {
      await expectAdapterError(
        await editedDragon({
          config: (c) => {
            c.base_model_name_or_path = "meta-llama/Llama-2-7b-hf";
          },
        }),
        /base model mismatch: trained on "meta-llama\/Llama-2-7b-hf", the loaded model is "stories260K"/,
      );
    });
    it("bad adapter_config.json", async () => {
      const dir = await editedDragon({});
      await writeFile(join(dir, "adapter_config.json"), "{ r: 8");
      await expectAdapterError(dir, /adapter_config\.json: not valid JSON/);
      await expectAdapterError(
        await editedDragon({
          config: (c) => {
            c.r = 0;
          },
        }),
        /r must be a positive integer, got 0/,
      );
      const missing = await mkdtemp(join(tmpdir(), "openlora-empty-"));
      await expectAdapterError(missing, /cannot read adapter_config\.json/);
      await cp(join(DRAGON, "adapter_config.json"), join(missing, "adapter_config.json"));
      await expectAdapterError(missing, /cannot read adapter_model\.safetensors/);
    });
    it("a tensor of a module the adapter may not touch", async () => {
      await expectAdapterError(
        await editedDragon({
          tensors: (t) => t.set("base_model.model.lm_head.lora_A.weight", { shape: [1], data: new Float32Array(1) }),
        }),
        /tensor base_model\.model\.lm_head\.lora_A\.weight: LoRA on lm_head is not supported/,
      );
    });
  });
});

describe("PEFT folders and open files", () => {
  // Linux lists a process's open descriptors in /proc/self/fd; elsewhere there is no portable count.
  it.runIf(process.platform === "linux")(
    "closes the safetensors file after loading or refusing an adapter",
    async () => {
      const openFiles = () => readdirSync("/proc/self/fd").length;
      const good = await expectations();
      const otherBase = await expectations({ name: "another-model" });
      await loadPeftAdapter(DRAGON, good); // first use: whatever Node opens once
      const before = openFiles();
      for (let i = 0; i < 4; i++) {
        await loadPeftAdapter(DRAGON, good);
        await expect(loadPeftAdapter(DRAGON, otherBase)).rejects.toBeInstanceOf(AdapterError);
      }
      expect(openFiles()).toBe(before);
    },
  );
});
