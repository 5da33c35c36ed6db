// What the engine does not compute as transformers or llama.cpp would is refused at load, by key, naming the file:
// each case edits one key of a family's random model (config.json, a safetensors tensor, GGUF metadata or tensor).
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ModelFormatError } from "../../../node/engine/errors.ts";
import { GgufReader } from "../../../node/engine/formats/gguf-read.ts";
import { GGML_TYPE, GGUF_TYPE, type GgufMetadataEntry } from "../../../node/engine/formats/gguf-types.ts";
import { writeGguf, writeGgufModel, ggufModelInput } from "../../../node/engine/formats/gguf-write.ts";
import { loadModel } from "../../../node/engine/formats/load-model.ts";
import { readSafetensors, writeSafetensors } from "../../../node/engine/formats/safetensors.ts";
import { familyFixture, type ModelPreset } from "./fixtures.ts";

async function refusal(path: string): Promise<string> {
  const error = await loadModel(path).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ModelFormatError);
  return (error as Error).message;
}

function scratch(label: string): string {
  return mkdtempSync(join(tmpdir(), `openlora-refuse-${label}-`));
}

/** A copy of a preset's HF folder with config.json edited (and optionally its tensors). */
function hfVariant(
  preset: ModelPreset,
  edit: (config: Record<string, unknown>) => void,
  tensors?: (t: Map<string, { shape: number[]; data: Float32Array }>) => void,
): string {
  const folder = join(scratch(preset), "hf");
  cpSync(familyFixture(preset).hf, folder, { recursive: true });
  const config = JSON.parse(readFileSync(join(folder, "config.json"), "utf8"));
  edit(config);
  writeFileSync(join(folder, "config.json"), JSON.stringify(config));
  if (tensors) {
    const file = join(folder, "model.safetensors");
    const stored = readSafetensors(readFileSync(file), file);
    const plain = new Map([...stored].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
    tensors(plain);
    writeFileSync(file, writeSafetensors(plain));
  }
  return folder;
}

/** A copy of a preset's GGUF with metadata edited (undefined deletes a key) and tensors added. */
function ggufVariant(
  preset: ModelPreset,
  edits: Record<string, GgufMetadataEntry | undefined>,
  extra: string[] = [],
): string {
  const file = join(scratch(preset), `${preset}.gguf`);
  const reader = GgufReader.open(familyFixture(preset).gguf);
  try {
    const metadata = new Map(reader.metadata);
    for (const [key, entry] of Object.entries(edits)) {
      if (entry === undefined) metadata.delete(key);
      else metadata.set(key, entry);
    }
    const tensors = [...reader.tensors.values()].map((info) => ({
      name: info.name,
      dims: info.dims,
      type: GGML_TYPE.F32,
      data: () => reader.readTensor(info.name),
    }));
    for (const name of extra) tensors.push({ name, dims: [32], type: GGML_TYPE.F32, data: () => new Float32Array(32) });
    writeGguf(file, metadata, tensors);
  } finally {
    reader.close();
  }
  return file;
}

const str = (value: string): GgufMetadataEntry => ({ type: GGUF_TYPE.string, value });
const u32 = (value: number): GgufMetadataEntry => ({ type: GGUF_TYPE.uint32, value });

describe("Hugging Face config.json keys the engine does not compute are refused by name", () => {
  const cases: [ModelPreset, string, (c: Record<string, unknown>) => void, string][] = [
    [
      "qwen2",
      "another rope type",
      (c) => void (c.rope_scaling = { type: "yarn", factor: 4 }),
      'rope_scaling of type "yarn" is not supported (only "default" and "llama3")',
    ],
    [
      "llama3",
      "rope_parameters (transformers 5) of another type",
      (c) => void (c.rope_parameters = { rope_type: "dynamic", rope_theta: 1e4, factor: 2 }),
      'rope_parameters of type "dynamic" is not supported (only "default" and "llama3")',
    ],
    [
      "gemma2",
      "rope_parameters differing by layer type",
      (c) =>
        void (c.rope_parameters = {
          full_attention: { rope_type: "default", rope_theta: 1e6 },
          sliding_attention: { rope_type: "default", rope_theta: 1e4 },
        }),
      "rope_parameters differ between layer types (full_attention, sliding_attention): not supported",
    ],
    [
      "qwen3",
      "attention bias (o included)",
      (c) => void (c.attention_bias = true),
      "attention_bias true (a bias on q, k, v and o) is not supported for Qwen3ForCausalLM",
    ],
    ["llama3", "an MLP bias", (c) => void (c.mlp_bias = true), "mlp_bias true is not supported"],
    [
      "mistral",
      "another activation",
      (c) => void (c.hidden_act = "gelu"),
      'hidden_act "gelu" is not supported (only "silu")',
    ],
    [
      "gemma2",
      "exact GELU",
      (c) => void (c.hidden_activation = "gelu"),
      'hidden_activation "gelu" is not supported (only "gelu_pytorch_tanh")',
    ],
    [
      "qwen2",
      "a quantized checkpoint",
      (c) => void (c.quantization_config = { quant_method: "gptq", bits: 4 }),
      'quantization_config ("gptq") is not supported: use an unquantized checkpoint or a GGUF',
    ],
    [
      "llama3",
      "an unknown architecture",
      (c) => void (c.architectures = ["Phi3ForCausalLM"]),
      'architectures ["Phi3ForCausalLM"] are not supported (only LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM)',
    ],
    [
      "gemma2",
      "an unknown layer type",
      (c) => void (c.layer_types = ["chunked_attention", "full_attention"]),
      'layer_types entry "chunked_attention" is not supported (only "full_attention", "sliding_attention")',
    ],
    [
      "qwen3",
      "partial RoPE",
      (c) => void (c.partial_rotary_factor = 0.5),
      "partial_rotary_factor 0.5 is not supported",
    ],
    [
      "gemma2",
      "bidirectional attention",
      (c) => void (c.use_bidirectional_attention = true),
      "use_bidirectional_attention true is not supported",
    ],
    [
      "mistral",
      "a zero window",
      (c) => void (c.sliding_window = 0),
      "sliding_window must be a positive integer or null, got 0",
    ],
  ];
  it.each(cases)("%s: %s", async (preset, _what, edit, problem) => {
    const folder = hfVariant(preset, edit);
    expect(await refusal(folder)).toBe(`${join(folder, "config.json")}: ${problem}`);
  });

  it("a tensor the config does not describe (a bias on o), naming the tensor and the file", async () => {
    const folder = hfVariant(
      "qwen2",
      () => {},
      (t) => t.set("model.layers.0.self_attn.o_proj.bias", { shape: [32], data: new Float32Array(32) }),
    );
    expect(await refusal(folder)).toBe(
      `${join(folder, "model.safetensors")}: tensor model.layers.0.self_attn.o_proj.bias is not part of a Qwen2ForCausalLM as config.json describes it (not supported)`,
    );
  });

  it("an untied classifier whose lm_head.weight is missing", async () => {
    const folder = hfVariant("llama3", (c) => void (c.tie_word_embeddings = false));
    expect(await refusal(folder)).toBe(`${join(folder, "model.safetensors")}: tensor lm_head.weight is missing`);
  });
});

describe("GGUF metadata and tensors the engine does not compute are refused by name", () => {
  const cases: [ModelPreset, string, Record<string, GgufMetadataEntry | undefined>, string][] = [
    [
      "qwen2",
      "another architecture",
      { "general.architecture": str("phi3") },
      'general.architecture "phi3" is not supported (only "llama", "qwen2", "qwen3", "gemma2")',
    ],
    [
      "qwen2",
      "RoPE scaling",
      { "qwen2.rope.scaling.type": str("yarn") },
      'qwen2.rope.scaling.type "yarn" is not supported',
    ],
    [
      "llama3",
      "a sliding window llama.cpp ignores",
      { "llama.attention.sliding_window": u32(8) },
      "llama.attention.sliding_window is not supported for llama (llama.cpp does not apply it either)",
    ],
    [
      "qwen3",
      "partial RoPE",
      { "qwen3.rope.dimension_count": u32(6) },
      "qwen3.rope.dimension_count 6 != head size 12 (partial RoPE is not supported)",
    ],
    [
      "qwen2",
      "another pre-tokenizer",
      { "tokenizer.ggml.pre": str("deepseek-llm") },
      'tokenizer.ggml.pre "deepseek-llm" is not supported (only "llama-bpe" and "qwen2")',
    ],
    [
      "llama3",
      "another tokenizer model",
      { "tokenizer.ggml.model": str("bert") },
      'tokenizer.ggml.model "bert" is not supported (only "llama", SentencePiece BPE, and "gpt2", byte-level BPE)',
    ],
    [
      "llama3",
      "gpt2 tokens without merges",
      { "tokenizer.ggml.merges": undefined },
      "missing tokenizer: metadata tokenizer.ggml.merges is absent",
    ],
  ];
  it.each(cases)("%s: %s", async (preset, _what, edits, problem) => {
    const file = ggufVariant(preset, edits);
    expect(await refusal(file)).toBe(`${file}: ${problem}`);
  });

  it("a tensor the architecture does not have", async () => {
    const file = ggufVariant("llama3", {}, ["blk.0.attn_output.bias"]);
    expect(await refusal(file)).toBe(
      `${file}: tensor blk.0.attn_output.bias is not part of a llama model (not supported)`,
    );
  });
});

describe("the GGUF writer refuses what llama.cpp would read back differently", () => {
  it.each([
    [
      "gemma2",
      (c: Record<string, unknown>): void => void (c.query_pre_attn_scalar = 2),
      "gemma2 attention scale 0.7071067690849304 (llama.cpp uses 0.2886751345948129 for 2 layers)",
    ],
    [
      "mistral",
      (c: Record<string, unknown>): void => void (c.sliding_window = 4),
      "sliding-window attention in a llama model",
    ],
  ] as const)("%s", async (preset, edit, problem) => {
    const model = await loadModel(hfVariant(preset, edit));
    const file = join(scratch("write"), "m.gguf");
    const vocab = familyFixture(preset).model.input.vocab;
    expect(() => writeGgufModel(file, ggufModelInput(model.weights, vocab, "x"), { dtype: "f32" })).toThrow(
      `${file}: cannot be written as GGUF: ${problem}`,
    );
  });
});
