import { statSync } from "node:fs";
import type { GgufDtype } from "../../engine/formats/gguf-write.ts";
import { writeGgufModel } from "../../engine/formats/gguf-write.ts";
import { writeHfModel } from "../../engine/formats/hf-write.ts";
import {
  MODEL_PRESETS,
  presetConfig,
  presetModel,
  type ModelPreset,
  type ModelShape,
} from "../../engine/formats/model-presets.ts";
import { randomModelInput } from "../../engine/formats/random-model.ts";
import { ALL_WEIGHT_DTYPES } from "../../engine/formats/weight-codec.ts";
import { configProblem, type ModelConfig } from "../../engine/model/config.ts";
import {
  numberOption,
  parseCommand,
  required,
  stringOption,
  UsageError,
  seedOption,
  type CommandSpec,
  type ParsedCommand,
} from "../args.ts";

const FORMATS = ["gguf", "hf"] as const;

const newSpec: CommandSpec = {
  summary:
    "Write a random-weight model of a real shape, plain LLaMA or of a family people fine-tune (for benchmarks and tests).",
  usage:
    "openlora model new [--family llama3|qwen2|qwen3|mistral|gemma2] [--format gguf|hf] --layers L --dim D --hidden H --heads N " +
    "--kv-heads K --vocab V [--head-dim HD] [--sliding-window W] [--dtype f32|f16|bf16|q8_0|q4_0|q4_k|q6_k] [--context C] [--seed S] --out <file or folder>",
  options: {
    family: { type: "string" },
    format: { type: "string" },
    "head-dim": { type: "string" },
    "sliding-window": { type: "string" },
    layers: { type: "string" },
    dim: { type: "string" },
    hidden: { type: "string" },
    heads: { type: "string" },
    "kv-heads": { type: "string" },
    vocab: { type: "string" },
    dtype: { type: "string" },
    context: { type: "string" },
    seed: { type: "string" },
    name: { type: "string" },
    out: { type: "string" },
  },
  help: {
    family:
      `${MODEL_PRESETS.join(" | ")}: that family's architecture, config.json, tokenizer (byte-level BPE for Llama 3 and Qwen, ` +
      "SentencePiece for Mistral and Gemma), chat template and EOS list (default: plain LLaMA with a SentencePiece vocabulary)",
    format: "gguf (default: a .gguf file) or hf (a Hugging Face folder, float32 safetensors; needs --family)",
    "head-dim": "attention head width when not dim / heads (Qwen3, Gemma 2)",
    "sliding-window": "gemma2: the window of its even layers (default 4096)",
    layers: "transformer blocks",
    dim: "model width",
    hidden: "MLP width",
    heads: "attention heads",
    "kv-heads": "key/value heads (grouped-query attention)",
    vocab: "vocabulary size (a synthetic vocabulary of the family's kind is written)",
    dtype:
      "gguf weight type: f32 (default), f16, bf16, q8_0, q4_0, q4_k or q6_k (rows that are not whole blocks stay f16; " +
      "the simd backend reads all but the K-quants)",
    context: "maximum context length (default 2048)",
    seed: "random seed (default 0)",
    name: "the model's name (default random-<layers>x<dim>)",
    out: "the .gguf file, or the folder, to write",
  },
};

export async function modelCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === "new") return create(rest);
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(
      "Create models.\n\nUsage: openlora model <command>\n\n  new   write a random-weight model of a real shape as GGUF\n\nRun openlora model new --help for its options.",
    );
    return;
  }
  throw new UsageError(`unknown model command "${sub}" (new)`);
}

async function create(argv: string[]): Promise<void> {
  const args = parseCommand(newSpec, argv);
  if (!args) return;
  const { values } = args;
  const int = (name: string): number => {
    const n = numberOption(values, name, NaN, { integer: true, min: 1 });
    if (Number.isNaN(n)) throw new UsageError(`--${name} is required`);
    return n;
  };
  const dim = int("dim");
  const heads = int("heads");
  const family = stringOption(values, "family") as ModelPreset | undefined;
  if (family !== undefined && !MODEL_PRESETS.includes(family))
    throw new UsageError(`--family must be one of ${MODEL_PRESETS.join(", ")}, got "${family}"`);
  const format = (stringOption(values, "format") ?? "gguf") as (typeof FORMATS)[number];
  if (!FORMATS.includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(", ")}, got "${format}"`);
  if (family !== undefined) return createFamily(values, family, format, dim, heads, int);
  if (format !== "gguf") throw new UsageError("--format hf needs --family (a plain LLaMA is written as GGUF)");
  if (dim % heads !== 0) throw new UsageError(`--dim ${dim} is not a multiple of --heads ${heads}`);
  const config: ModelConfig = {
    dim,
    hiddenDim: int("hidden"),
    nLayers: int("layers"),
    nHeads: heads,
    nKvHeads: int("kv-heads"),
    headDim: dim / heads,
    vocabSize: int("vocab"),
    maxSeqLen: numberOption(values, "context", 2048, { integer: true, min: 1 }),
    normEps: 1e-5,
    ropeTheta: 10000,
  };
  const problem = configProblem(config);
  if (problem) throw new UsageError(problem);
  if (config.vocabSize < 259)
    throw new UsageError("--vocab must be at least 259 (3 special tokens and 256 byte tokens)");
  const dtype = dtypeOption(values);
  const out = required(values, "out");
  const name = stringOption(values, "name") ?? `random-${config.nLayers}x${config.dim}`;
  const started = performance.now();
  writeGgufModel(out, randomModelInput(config, seedOption(values, 0), {}, name), { dtype });
  const bytes = statSync(out).size;
  console.log(
    `wrote ${out}: ${name}, ${(bytes / 1e6).toFixed(1)} MB ${dtype}, ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}

/** A random model of a family, as GGUF or as a Hugging Face folder. */
function createFamily(
  values: ParsedCommand["values"],
  family: ModelPreset,
  format: "gguf" | "hf",
  dim: number,
  heads: number,
  int: (name: string) => number,
): void {
  const optionalInt = (name: string): number | undefined =>
    stringOption(values, name) === undefined ? undefined : numberOption(values, name, 1, { integer: true, min: 1 });
  const headDim = optionalInt("head-dim");
  if (headDim === undefined && dim % heads !== 0)
    throw new UsageError(`--dim ${dim} is not a multiple of --heads ${heads} (give --head-dim)`);
  const shape: ModelShape = {
    layers: int("layers"),
    dim,
    hidden: int("hidden"),
    heads,
    kvHeads: int("kv-heads"),
    headDim,
    vocab: int("vocab"),
    context: numberOption(values, "context", 2048, { integer: true, min: 1 }),
    slidingWindow: optionalInt("sliding-window"),
  };
  const problem = configProblem(presetConfig(family, shape));
  if (problem) throw new UsageError(problem);
  const dtype = dtypeOption(values);
  if (format === "hf" && dtype !== "f32")
    throw new UsageError("--format hf writes float32 safetensors: leave --dtype out");
  const out = required(values, "out");
  const name = stringOption(values, "name") ?? `random-${family}-${shape.layers}x${dim}`;
  const started = performance.now();
  let model;
  try {
    model = presetModel(family, shape, seedOption(values, 0), name);
  } catch (error) {
    throw new UsageError((error as Error).message); // a vocabulary too small for the family's special tokens
  }
  if (format === "hf") writeHfModel(out, model);
  else writeGgufModel(out, model.input, { dtype });
  const bytes = format === "hf" ? statSync(`${out}/model.safetensors`).size : statSync(out).size;
  const what = format === "hf" ? "Hugging Face folder, float32" : dtype;
  console.log(
    `wrote ${out}: ${name} (${family}), ${(bytes / 1e6).toFixed(1)} MB ${what}, ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}

/** --dtype: any format the GGUF writer and the loader keep as blocks (default f32). */
function dtypeOption(values: ParsedCommand["values"]): GgufDtype {
  const dtype = (stringOption(values, "dtype") ?? "f32") as GgufDtype;
  if (!ALL_WEIGHT_DTYPES.includes(dtype))
    throw new UsageError(`--dtype must be one of ${ALL_WEIGHT_DTYPES.join(", ")}, got "${dtype}"`);
  return dtype;
}
