// PEFT's adapter_config.json and tensors to the canonical adapter, in memory (no folders): every refusal of
// parsePeftConfig by name, PEFT's pattern rule (a key matches a module name that ends with it at a dot), the
// base-model name comparison (aliases included), target_modules as a list, a regular expression or "all-linear", the
// q/k basis change on q and k only, an adapter read without a model, and each refusal of tensors, sizes and scales.
import { describe, expect, it } from "vitest";
import {
  parsePeftConfig,
  peftModuleNames,
  peftTensorKey,
  peftToAdapter,
  type AdapterExpectations,
  type PeftConfig,
  type PeftTensor,
} from "../../node/engine/adapter/peft.ts";
import { AdapterError } from "../../node/engine/errors.ts";
import type { SafetensorsTensor } from "../../node/engine/formats/safetensors.ts";
import { projectionShape, type LinearTarget } from "../../node/engine/model/config.ts";
import { permuteRotateHalfRows } from "../../node/engine/model/rope-basis.ts";
import { stories } from "../helpers/stories.ts";

const model = await stories();
const config = model.weights.config;
const expectations: AdapterExpectations = { config, name: model.name, qkBasis: "interleaved", maxRank: 8 };
const base = {
  peft_type: "LORA",
  r: 4,
  lora_alpha: 8,
  target_modules: ["q_proj", "v_proj"],
  base_model_name_or_path: "stories260K",
};

function parse(over: Record<string, unknown>): PeftConfig {
  return parsePeftConfig(JSON.stringify({ ...base, ...over }), "cfg.json");
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AdapterError);
    return (error as Error).message;
  }
  throw new Error("accepted");
}

/** PEFT tensors for `targets` in every layer, rank r (or per module from `ranks`), with distinct values. */
function tensors(
  targets: LinearTarget[],
  r: number,
  ranks: Record<string, number> = {},
  layers = config.nLayers,
): Map<string, SafetensorsTensor> {
  const map = new Map<string, SafetensorsTensor>();
  let seed = 1;
  for (let l = 0; l < layers; l++) {
    for (const t of targets) {
      const rank = ranks[`${l}.${t}`] ?? r;
      const { inDim, outDim } = projectionShape(config, t);
      const data = (n: number) => Float32Array.from({ length: n }, (_, i) => ((seed++ * 7919 + i) % 1000) / 1000 - 0.5);
      map.set(peftTensorKey(l, t, "A"), { dtype: "F32", shape: [rank, inDim], data: data(rank * inDim) });
      map.set(peftTensorKey(l, t, "B"), { dtype: "F32", shape: [outDim, rank], data: data(outDim * rank) });
    }
  }
  return map;
}

describe("parsePeftConfig", () => {
  it("reads the fields LoRA inference needs, with PEFT's defaults", () => {
    const c = parse({});
    expect([c.r, c.loraAlpha, c.useRslora, c.targetModules, c.baseModel]).toEqual([
      4,
      8,
      false,
      ["q", "v"],
      "stories260K",
    ]);
    expect([c.rankPattern, c.alphaPattern]).toEqual([[], []]);
    // Targets in the canonical order whatever the file's; a single module as a string; no peft_type is LoRA.
    expect(parse({ target_modules: ["down_proj", "q_proj", "gate_proj"] }).targetModules).toEqual([
      "q",
      "gate",
      "down",
    ]);
    expect(parse({ target_modules: ["o_proj"], peft_type: undefined }).targetModules).toEqual(["o"]);
    expect(parse({ use_rslora: true, base_model_name_or_path: 3 })).toMatchObject({ useRslora: true, baseModel: "" });
    expect(parse({ use_rslora: "yes" }).useRslora).toBe(false);
    const patterns = parse({ rank_pattern: { "layers.0.self_attn.q_proj": 2 }, alpha_pattern: { v_proj: 0.5 } });
    expect(patterns.rankPattern.map((p) => [p.key, p.value])).toEqual([["layers.0.self_attn.q_proj", 2]]);
    expect(patterns.alphaPattern.map((p) => [p.key, p.value])).toEqual([["v_proj", 0.5]]);
    expect(parse({ bias: "none", fan_in_fan_out: false }).r).toBe(4);
  });

  it("refuses what it cannot serve, naming the file and the field", () => {
    const cases: [Record<string, unknown> | string, RegExp][] = [
      ["{ r: 4", /not valid JSON/],
      ["[1, 2]", /not a JSON object/],
      ["null", /not a JSON object/],
      ["7", /not a JSON object/],
      [{ peft_type: "IA3" }, /peft_type "IA3" is not LORA/],
      [{ r: 0 }, /r must be a positive integer, got 0/],
      [{ r: 2.5 }, /r must be a positive integer, got 2.5/],
      [{ r: "4" }, /r must be a positive integer, got "4"/],
      [{ r: undefined }, /r must be a positive integer, got undefined/],
      [{ lora_alpha: "8" }, /lora_alpha must be a number, got "8"/],
      [{ lora_alpha: null }, /lora_alpha must be a number, got null/],
      [{ fan_in_fan_out: true }, /fan_in_fan_out adapters \(Conv1D layouts\) are not supported/],
      [{ bias: "all" }, /bias "all" is not supported \(only "none"\)/],
      [{ target_modules: [] }, /target_modules must be a non-empty list/],
      [{ target_modules: undefined }, /target_modules must be a non-empty list/],
      [{ target_modules: ["q_proj", "lm_head"] }, /"lm_head"/],
      [
        { target_modules: ["q_proj", "rotary_emb"] },
        /unknown target module "rotary_emb" \(supported: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down/,
      ],
      [{ rank_pattern: [2] }, /rank_pattern must be an object/],
      [{ rank_pattern: "q_proj" }, /rank_pattern must be an object/],
      [{ alpha_pattern: { q_proj: 0 } }, /alpha_pattern\[q_proj\] must be a positive/],
      [{ rank_pattern: { q_proj: -2 } }, /rank_pattern\[q_proj\] must be a positive/],
      [{ rank_pattern: { q_proj: "2" } }, /rank_pattern\[q_proj\] must be a positive/],
    ];
    for (const [over, message] of cases) {
      const text = typeof over === "string" ? over : JSON.stringify({ ...base, ...over });
      const got = refusal(() => parsePeftConfig(text, "cfg.json"));
      expect(got, JSON.stringify(over)).toMatch(/^adapter cfg\.json: /);
      expect(got, JSON.stringify(over)).toMatch(message);
    }
    // Infinity does not survive JSON: a lora_alpha of 1e999 reads as Infinity and is refused.
    expect(
      refusal(() => parsePeftConfig('{"r": 4, "lora_alpha": 1e999, "target_modules": ["q_proj"]}', "cfg.json")),
    ).toMatch(/lora_alpha must be a number/);
  });
});

describe("peftToAdapter", () => {
  it("folds alpha / r into B, keeps A as it is, and lists targets in canonical order", () => {
    const t = tensors(["v", "q"], 4);
    const { adapter, encoded } = peftToAdapter(parse({}), t, "src", expectations);
    expect(adapter).toMatchObject({
      baseModel: "stories260K",
      rank: 4,
      alpha: 8,
      useRslora: false,
      targets: ["q", "v"],
    });
    expect(adapter.layers).toHaveLength(config.nLayers);
    for (let l = 0; l < config.nLayers; l++) {
      expect(adapter.layers[l].q!.a).toEqual(t.get(peftTensorKey(l, "q", "A"))!.data);
      expect(adapter.layers[l].v!.b).toEqual(t.get(peftTensorKey(l, "v", "B"))!.data.map((x) => x * 2));
      expect(Object.keys(adapter.layers[l]).sort()).toEqual(["q", "v"]);
    }
    expect(adapter.id).toMatch(/^0x[0-9a-f]{64}$/);
    expect(encoded.length).toBeGreaterThan(0);
  });

  it("matches pattern keys the way PEFT does: the module name ends with the key, at a dot", () => {
    const pattern = (key: string, value: number) =>
      parse({ target_modules: ["q_proj", "v_proj", "gate_proj"], alpha_pattern: { [key]: value } });
    const t = tensors(["q", "v", "gate"], 4);
    const scaleOf = (c: PeftConfig, l: number, target: LinearTarget) => {
      const a = peftToAdapter(c, t, "src", expectations).adapter;
      return a.layers[l][target]!.b[0] / t.get(peftTensorKey(l, target, "B"))!.data[0];
    };
    // "proj" is not a whole name part of "q_proj": no match, the default alpha 8 / r 4.
    expect(scaleOf(pattern("proj", 40), 0, "q")).toBeCloseTo(2, 6);
    // A full dotted suffix, a bare module name, and a regular expression over layers.
    expect(scaleOf(pattern("self_attn.v_proj", 40), 2, "v")).toBeCloseTo(10, 6);
    expect(scaleOf(pattern("self_attn.v_proj", 40), 2, "q")).toBeCloseTo(2, 6);
    expect(scaleOf(pattern("gate_proj", 4), 4, "gate")).toBeCloseTo(1, 6);
    expect(scaleOf(pattern("layers\\.[0-1]\\.mlp\\.gate_proj", 12), 1, "gate")).toBeCloseTo(3, 6);
    expect(scaleOf(pattern("layers\\.[0-1]\\.mlp\\.gate_proj", 12), 2, "gate")).toBeCloseTo(2, 6);
    // A key starting inside a name part: "1.mlp.gate_proj" is layer 1's (after the dot), not layer 2's.
    expect(scaleOf(pattern("1.mlp.gate_proj", 12), 1, "gate")).toBeCloseTo(3, 6);
    expect(scaleOf(pattern("1.mlp.gate_proj", 12), 2, "gate")).toBeCloseTo(2, 6);
  });

  it("takes the largest rank over modules as the adapter's rank", () => {
    const c = parse({ rank_pattern: { "layers.3.self_attn.v_proj": 6 } });
    const { adapter } = peftToAdapter(c, tensors(["q", "v"], 4, { "3.v": 6 }), "src", expectations);
    expect(adapter.rank).toBe(6);
    expect(adapter.layers[3].v!.rank).toBe(6);
    expect(adapter.layers[3].v!.b).toHaveLength(projectionShape(config, "v").outDim * 6);
  });

  it("changes the row order of q and k lora_B only, for a rotate-half model", () => {
    const t = tensors(["q", "k", "v"], 4);
    const canonical = peftToAdapter(
      parse({ target_modules: ["q_proj", "k_proj", "v_proj"] }),
      t,
      "src",
      expectations,
    ).adapter;
    const hf = new Map(t);
    for (let l = 0; l < config.nLayers; l++) {
      for (const [target, heads] of [
        ["q", config.nHeads],
        ["k", config.nKvHeads],
      ] as const) {
        const b = t.get(peftTensorKey(l, target, "B"))!;
        hf.set(peftTensorKey(l, target, "B"), { ...b, data: permuteRotateHalfRows(b.data, heads, 4) });
      }
    }
    const fromHf = peftToAdapter(parse({ target_modules: ["q_proj", "k_proj", "v_proj"] }), hf, "src", {
      ...expectations,
      qkBasis: "rotate-half",
    }).adapter;
    expect(fromHf.id).toBe(canonical.id);
    // v is not rotated: permuting its rows would change the adapter.
    const vPermuted = new Map(t);
    const vb = t.get(peftTensorKey(0, "v", "B"))!;
    vPermuted.set(peftTensorKey(0, "v", "B"), { ...vb, data: permuteRotateHalfRows(vb.data, config.nKvHeads, 4) });
    expect(
      peftToAdapter(parse({ target_modules: ["q_proj", "k_proj", "v_proj"] }), vPermuted, "src", {
        ...expectations,
        qkBasis: "rotate-half",
      }).adapter.layers[0].v!.b,
    ).toEqual(vPermuted.get(peftTensorKey(0, "v", "B"))!.data.map((x) => x * 2));
  });

  it("compares base model names by their last path part, case-insensitively", () => {
    const names = ["stories260K", "karpathy/Stories260K", "/models/stories260k//", "C:\\models\\STORIES260K", ""];
    for (const name of names) {
      expect(
        peftToAdapter(parse({ base_model_name_or_path: name }), tensors(["q", "v"], 4), "src", expectations).adapter
          .baseModel,
      ).toBe(name);
    }
    expect(
      refusal(() =>
        peftToAdapter(parse({ base_model_name_or_path: "stories15M" }), tensors(["q", "v"], 4), "src", expectations),
      ),
    ).toBe(
      'adapter src: base model mismatch: trained on "stories15M", the loaded model is "stories260K"; ' +
        "give the model that name as an alias if it is the same model",
    );
    // Case-insensitive as lower case: a dotless i upper-cases to the model's "I" but is another letter.
    expect(
      refusal(() =>
        peftToAdapter(
          parse({ base_model_name_or_path: "stor\u0131es260K" }),
          tensors(["q", "v"], 4),
          "src",
          expectations,
        ),
      ),
    ).toContain("base model mismatch");
  });

  it("takes the model's name or any of its aliases, and names the aliases when it refuses", () => {
    const aliased = { ...expectations, aliases: ["karpathy/tinyllamas", "TinyStories"] };
    for (const name of ["stories260K", "roneneldan/tinystories"]) {
      const { adapter } = peftToAdapter(
        parse({ base_model_name_or_path: name }),
        tensors(["q", "v"], 4),
        "src",
        aliased,
      );
      expect(adapter.baseModel).toBe(name);
    }
    expect(
      refusal(() =>
        peftToAdapter(parse({ base_model_name_or_path: "stories15M" }), tensors(["q", "v"], 4), "src", aliased),
      ),
    ).toBe(
      'adapter src: base model mismatch: trained on "stories15M", the loaded model is "stories260K" ' +
        '(or its aliases "karpathy/tinyllamas", "TinyStories"); ' +
        "give the model that name as an alias if it is the same model",
    );
    // An empty list of aliases reads as none.
    expect(
      refusal(() =>
        peftToAdapter(parse({ base_model_name_or_path: "stories15M" }), tensors(["q", "v"], 4), "src", {
          ...expectations,
          aliases: [],
        }),
      ),
    ).toMatch(/the loaded model is "stories260K"; give/);
  });

  it("refuses tensors it cannot place, by name", () => {
    const cfg = parse({});
    const cases: [Map<string, SafetensorsTensor>, string][] = [
      [new Map(), "no LoRA tensors in adapter_model.safetensors"],
      [
        new Map([
          ...tensors(["q", "v"], 4),
          [
            "base_model.model.model.layers.0.self_attn.rotary_emb.lora_A.weight",
            { dtype: "F32", shape: [1], data: new Float32Array(1) },
          ],
        ]),
        "unexpected tensor base_model.model.model.layers.0.self_attn.rotary_emb.lora_A.weight",
      ],
      [tensors(["q", "v", "o"], 4), "targets o_proj, which target_modules does not list"],
      [tensors(["q", "v"], 4, {}, config.nLayers + 1), `layer ${config.nLayers}`],
    ];
    for (const [t, message] of cases)
      expect(refusal(() => peftToAdapter(cfg, t, "src", expectations))).toContain(message);
    const wrongB = tensors(["q", "v"], 4);
    wrongB.set(peftTensorKey(1, "v", "B"), { dtype: "F32", shape: [4, 32], data: new Float32Array(128) });
    expect(refusal(() => peftToAdapter(cfg, wrongB, "src", expectations))).toContain(
      "lora_B of layer 1 v_proj has shape [4,32], expected [32, 4]",
    );
    const oneDim = tensors(["q", "v"], 4);
    oneDim.set(peftTensorKey(0, "q", "A"), { dtype: "F32", shape: [4 * 64], data: new Float32Array(256) });
    expect(refusal(() => peftToAdapter(cfg, oneDim, "src", expectations))).toContain(
      "lora_A of layer 0 q_proj has shape [256], expected [4, 64]",
    );
    expect(refusal(() => peftToAdapter(parse({ r: 16 }), tensors(["q", "v"], 16), "src", expectations))).toContain(
      "rank 16 of layer 0 q_proj exceeds the configured maximum 8",
    );
    // Exactly the maximum is fine.
    expect(peftToAdapter(parse({ r: 8 }), tensors(["q", "v"], 8), "src", expectations).adapter.rank).toBe(8);
  });

  it("reads an adapter without a model (adapter inspect): layers and shapes from the tensors themselves", () => {
    const t = tensors(["down"], 2, {}, 3);
    const { adapter } = peftToAdapter(
      parse({ r: 2, target_modules: ["down_proj"], base_model_name_or_path: "anything" }),
      t,
      "src",
    );
    expect(adapter.layers).toHaveLength(3);
    expect(adapter).toMatchObject({ rank: 2, targets: ["down"], baseModel: "anything" });
    expect(adapter.layers[2].down!.a).toHaveLength(2 * config.hiddenDim);
  });

  it("names PEFT modules for writers", () => {
    expect(peftModuleNames(["q", "gate", "down"])).toEqual(["q_proj", "gate_proj", "down_proj"]);
    expect(peftTensorKey(3, "up", "B")).toBe("base_model.model.model.layers.3.mlp.up_proj.lora_B.weight");
  });
});

describe("parsePeftConfig: pattern keys", () => {
  it("names the pattern whose key is not a regular expression RE2 can run", () => {
    expect(() => parse({ rank_pattern: { "q_proj(": 2 } })).toThrow(
      /^adapter cfg\.json: rank_pattern key "q_proj\(" is not a usable regular expression/,
    );
    expect(() => parse({ alpha_pattern: { "[v": 2 } })).toThrow(/alpha_pattern key "\[v" is not a usable/);
  });
});

describe("parsePeftConfig: keys that change what LoRA computes", () => {
  it("refuses them when set and reads null, false, [] and {} as unset", () => {
    expect(() => parse({ use_dora: true })).toThrow(/use_dora true is not supported \(DoRA/);
    expect(() => parse({ modules_to_save: ["lm_head"] })).toThrow(/modules_to_save \["lm_head"\] is not supported/);
    for (const unset of [null, false, [], {}])
      expect(() => parse({ modules_to_save: unset, use_dora: unset })).not.toThrow();
  });
});

describe("parsePeftConfig: target_modules as PEFT reads it", () => {
  const ALL: LinearTarget[] = ["q", "k", "v", "o", "gate", "up", "down"];

  it('reads "all-linear" as every projection of every layer', () => {
    const c = parse({ target_modules: "all-linear" });
    expect(c.targetModules).toEqual(ALL);
    expect(peftToAdapter(c, tensors(["q", "o", "down"], 4), "src", expectations).adapter.targets).toEqual([
      "q",
      "o",
      "down",
    ]);
  });

  it("reads another string as a regular expression the whole module name must match", () => {
    const c = parse({ target_modules: ".*\\.(q|v)_proj" });
    expect(c.targetModules).toEqual(["q", "v"]);
    expect([c.targets(3, "q"), c.targets(3, "v"), c.targets(3, "k"), c.targets(3, "gate")]).toEqual([
      true,
      true,
      false,
      false,
    ]);
    expect(peftToAdapter(c, tensors(["q", "v"], 4), "src", expectations).adapter.targets).toEqual(["q", "v"]);
  });

  it("matches a listed name as the whole module name or its suffix after a dot", () => {
    const c = parse({ target_modules: ["model.layers.2.self_attn.q_proj"] });
    expect(c.targetModules).toEqual(["q"]);
    expect([c.targets(2, "q"), c.targets(1, "q"), c.targets(12, "q"), c.targets(2, "k")]).toEqual([
      true,
      false,
      false,
      false,
    ]);
  });

  it("refuses lm_head and embed_tokens, named or matched, and an expression RE2 cannot compile", () => {
    const cases: [string, string][] = [
      [
        "lm_head",
        'target_modules "lm_head": LoRA on lm_head is not supported (only the q,k,v,o,gate,up,down projections)',
      ],
      [
        ".*(embed_tokens|q_proj)",
        'target_modules ".*(embed_tokens|q_proj)" matches embed_tokens: LoRA on embed_tokens is not supported',
      ],
      // PEFT may name the module bare (top level) or under model.: either match is refused.
      ["lm_head|.*q_proj", 'target_modules "lm_head|.*q_proj" matches lm_head: LoRA on lm_head is not supported'],
      [
        "model\\.embed_tokens|.*q_proj",
        'target_modules "model\\\\.embed_tokens|.*q_proj" matches embed_tokens: LoRA on embed_tokens is not supported',
      ],
    ];
    for (const [value, problem] of cases)
      expect(refusal(() => parse({ target_modules: value }))).toBe(`adapter cfg.json: ${problem}`);
    expect(refusal(() => parse({ target_modules: "q_proj(" }))).toMatch(
      /^adapter cfg\.json: target_modules "q_proj\(" is not a usable regular expression: \S/,
    );
  });
});

describe("peftToAdapter: tensors, sizes and scales it refuses", () => {
  /** The tensors of `tensors(["q", "v"], 4)` with the one named replaced. */
  function replaced(key: string, tensor: PeftTensor): Map<string, PeftTensor> {
    return new Map<string, PeftTensor>([...tensors(["q", "v"], 4), [key, tensor]]);
  }
  const neverRead = (): Float32Array => {
    throw new Error("a refused tensor's values were read");
  };

  it("refuses layers.00 beside layers.0 (PyTorch writes 0): one of them would be dropped", () => {
    const t: Map<string, PeftTensor> = tensors(["q", "v"], 4);
    for (const which of ["A", "B"] as const)
      t.set(peftTensorKey(0, "q", which).replace("layers.0.", "layers.00."), t.get(peftTensorKey(0, "q", which))!);
    expect(refusal(() => peftToAdapter(parse({}), t, "src", expectations))).toBe(
      "adapter src: tensor base_model.model.model.layers.00.self_attn.q_proj.lora_A.weight: " +
        "layer index 00 is not written as PyTorch names layers",
    );
  });

  it("refuses a layer past the model's, or past 4096 without a model, naming the bound", () => {
    const key = peftTensorKey(config.nLayers, "q", "A");
    expect(
      refusal(() => peftToAdapter(parse({}), tensors(["q", "v"], 4, {}, config.nLayers + 1), "src", expectations)),
    ).toBe(
      `adapter src: tensor ${key}: layer ${config.nLayers} is out of range (the model has ${config.nLayers} layers)`,
    );
    const far = new Map<string, PeftTensor>([
      [peftTensorKey(4096, "q", "A"), { shape: [4, 64], data: neverRead }],
      [peftTensorKey(4096, "q", "B"), { shape: [64, 4], data: neverRead }],
    ]);
    expect(refusal(() => peftToAdapter(parse({}), far, "src"))).toBe(
      `adapter src: tensor ${peftTensorKey(4096, "q", "A")}: ` +
        "layer 4096 is out of range (an adapter has at most 4096 layers)",
    );
  });

  it("refuses a shape that is only a prefix of the expected one", () => {
    const t = replaced(peftTensorKey(0, "q", "A"), { shape: [4], data: new Float32Array(4) });
    expect(refusal(() => peftToAdapter(parse({}), t, "src", expectations))).toBe(
      "adapter src: lora_A of layer 0 q_proj has shape [4], expected [4, 64]",
    );
  });

  it("without a model, takes a dimension of 2^17 and refuses 2^17 + 1 from the header, before reading values", () => {
    const c = parse({ r: 1, target_modules: ["q_proj"], base_model_name_or_path: "anything" });
    const wide = (inDim: number, data: PeftTensor["data"]) =>
      new Map<string, PeftTensor>([
        [peftTensorKey(0, "q", "A"), { shape: [1, inDim], data }],
        [peftTensorKey(0, "q", "B"), { shape: [8, 1], data: new Float32Array(8) }],
      ]);
    expect(peftToAdapter(c, wide(2 ** 17, new Float32Array(2 ** 17)), "src").adapter.layers[0].q!.a).toHaveLength(
      2 ** 17,
    );
    expect(refusal(() => peftToAdapter(c, wide(2 ** 17 + 1, neverRead), "src"))).toBe(
      "adapter src: lora_A/lora_B of layer 0 q_proj have shapes [1,131073] and [8,1], " +
        "over the 131072 an adapter dimension may take",
    );
  });

  it("refuses a lora_B that overflows float32 once scaled, even in one value", () => {
    // 3e38 is a float32; times alpha / r = 2 it is not. Every other value stays finite.
    const b = tensors(["q", "v"], 4).get(peftTensorKey(1, "v", "B"))!;
    const t = replaced(peftTensorKey(1, "v", "B"), { ...b, data: Float32Array.from(b.data, (x, i) => (i ? x : 3e38)) });
    expect(refusal(() => peftToAdapter(parse({}), t, "src", expectations))).toBe(
      "adapter src: layer 1 v_proj: lora_B scaled by lora_alpha 8 / rank 4 (2) overflows float32",
    );
  });
});
