import { statSync } from "node:fs";
import type { GgufDtype } from "../../engine/formats/gguf-write.ts";
import { writeGgufModel } from "../../engine/formats/gguf-write.ts";
import { randomModelInput } from "../../engine/formats/random-model.ts";
import { WEIGHT_DTYPES } from "../../engine/formats/weight-codec.ts";
import { configProblem, type ModelConfig } from "../../engine/model/config.ts";
import { numberOption, parseCommand, required, stringOption, UsageError, seedOption, type CommandSpec } from "../args.ts";

const newSpec: CommandSpec = {
  summary: "Write a random-weight LLaMA model of a real shape as GGUF (for benchmarks and tests).",
  usage: "openlora model new --layers L --dim D --hidden H --heads N --kv-heads K --vocab V [--dtype f32|f16|q8_0] [--context C] [--seed S] --out <file>",
  options: {
    layers: { type: "string" }, dim: { type: "string" }, hidden: { type: "string" }, heads: { type: "string" }, "kv-heads": { type: "string" },
    vocab: { type: "string" }, dtype: { type: "string" }, context: { type: "string" }, seed: { type: "string" }, name: { type: "string" }, out: { type: "string" },
  },
  help: {
    layers: "transformer blocks", dim: "model width", hidden: "MLP width", heads: "attention heads", "kv-heads": "key/value heads (grouped-query attention)",
    vocab: "vocabulary size (a synthetic SentencePiece vocabulary is written)", dtype: "weight type: f32 (default), f16 or q8_0",
    context: "maximum context length (default 2048)", seed: "random seed (default 0)", name: "general.name (default random-<layers>x<dim>)", out: "the .gguf file to write",
  },
};

export async function modelCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === "new") return create(rest);
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log("Create models.\n\nUsage: openlora model <command>\n\n  new   write a random-weight model of a real shape as GGUF\n\nRun openlora model new --help for its options.");
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
  if (dim % heads !== 0) throw new UsageError(`--dim ${dim} is not a multiple of --heads ${heads}`);
  const config: ModelConfig = {
    dim, hiddenDim: int("hidden"), nLayers: int("layers"), nHeads: heads, nKvHeads: int("kv-heads"), headDim: dim / heads,
    vocabSize: int("vocab"), maxSeqLen: numberOption(values, "context", 2048, { integer: true, min: 1 }), normEps: 1e-5, ropeTheta: 10000,
  };
  const problem = configProblem(config);
  if (problem) throw new UsageError(problem);
  if (config.vocabSize < 259) throw new UsageError("--vocab must be at least 259 (3 special tokens and 256 byte tokens)");
  const dtype = (stringOption(values, "dtype") ?? "f32") as GgufDtype;
  if (!WEIGHT_DTYPES.includes(dtype)) throw new UsageError(`--dtype must be one of ${WEIGHT_DTYPES.join(", ")}, got "${dtype}"`);
  const out = required(values, "out");
  const name = stringOption(values, "name") ?? `random-${config.nLayers}x${config.dim}`;
  const started = performance.now();
  writeGgufModel(out, randomModelInput(config, seedOption(values, 0), {}, name), { dtype });
  const bytes = statSync(out).size;
  console.log(`wrote ${out}: ${name}, ${(bytes / 1e6).toFixed(1)} MB ${dtype}, ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
