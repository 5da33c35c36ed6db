import { adapterParameterCount } from "../../engine/adapter/lora.ts";
import { loadPeftAdapter } from "../../engine/adapter/peft.ts";
import { writeRandomPeftAdapter } from "../../engine/adapter/random-adapter.ts";
import { loadModel, modelIdentity } from "../../engine/formats/load-model.ts";
import { LINEAR_TARGETS, type LinearTarget } from "../../engine/model/config.ts";
import {
  numberOption,
  parseCommand,
  required,
  stringOption,
  UsageError,
  seedOption,
  type CommandSpec,
} from "../args.ts";

const inspectSpec: CommandSpec = {
  summary: "Show a PEFT LoRA adapter: id, family, rank, alpha, targets, parameters, bytes.",
  usage: "openlora adapter inspect <dir> [--model <m>] [--json]",
  options: { model: { type: "string" }, json: { type: "boolean" } },
  help: {
    model:
      "the model it is served on (only its config is read): the id as that model's nodes compute it, and the " +
      "adapter checked against it (default: a plain LLaMA in llama2.c's basis)",
    json: "print one JSON object",
  },
  positionals: 1,
};

const newSpec: CommandSpec = {
  summary: "Write a random PEFT LoRA adapter for a model's shape (for tests and benchmarks).",
  usage: "openlora adapter new --model <m> --rank R --seed S --out <dir> [--targets q,k,v,o,gate,up,down] [--alpha A]",
  options: {
    model: { type: "string" },
    rank: { type: "string" },
    targets: { type: "string" },
    seed: { type: "string" },
    out: { type: "string" },
    alpha: { type: "string" },
    rslora: { type: "boolean" },
  },
  help: {
    model: "the model the adapter is for (its shape and name)",
    rank: "LoRA rank r",
    targets: `comma-separated targets (default all: ${LINEAR_TARGETS.join(",")})`,
    seed: "random seed",
    out: "folder to write adapter_config.json and adapter_model.safetensors into",
    alpha: "lora_alpha (default 2 x rank)",
    rslora: "use rsLoRA scaling (alpha / sqrt(r))",
  },
};

export async function adapterCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === "inspect") return inspect(rest);
  if (sub === "new") return create(rest);
  if (sub === "register") return (await import("./adapter-register.ts")).adapterRegisterCommand(rest);
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    console.log(
      "Inspect, create or register PEFT LoRA adapters.\n\nUsage: openlora adapter <command>\n\n  inspect <dir>   show a PEFT adapter\n  new             write a random PEFT adapter\n  register <dir>  list it on chain with its contributors (and put it in a node's store)\n\nRun openlora adapter <command> --help for its options.",
    );
    return;
  }
  throw new UsageError(`unknown adapter command "${sub}" (inspect, new, register)`);
}

async function inspect(argv: string[]): Promise<void> {
  const args = parseCommand(inspectSpec, argv);
  if (!args) return;
  const modelPath = stringOption(args.values, "model");
  const model = modelPath === undefined ? undefined : await modelIdentity(modelPath);
  const expect = model && { config: model.config, name: model.name, qkBasis: model.qkBasis, maxRank: Infinity };
  const { adapter, encoded } = await loadPeftAdapter(args.positionals[0], expect);
  const summary = {
    id: adapter.id,
    family: adapter.family,
    baseModel: adapter.baseModel,
    rank: adapter.rank,
    alpha: adapter.alpha,
    useRslora: adapter.useRslora,
    targets: adapter.targets,
    layers: adapter.layers.length,
    parameters: adapterParameterCount(adapter),
    bytes: encoded.length,
  };
  if (args.values.json === true) {
    console.log(JSON.stringify(summary));
    return;
  }
  for (const [key, value] of Object.entries(summary))
    console.log(`${key.padEnd(11)} ${Array.isArray(value) ? value.join(",") : value}`);
}

async function create(argv: string[]): Promise<void> {
  const args = parseCommand(newSpec, argv);
  if (!args) return;
  const { values } = args;
  const targetsText = stringOption(values, "targets");
  const targets = targetsText ? targetsText.split(",").map((t) => t.trim().replace(/_proj$/, "")) : [...LINEAR_TARGETS];
  for (const t of targets)
    if (!LINEAR_TARGETS.includes(t as LinearTarget))
      throw new UsageError(`unknown target "${t}" (${LINEAR_TARGETS.join(", ")})`);
  const rank = numberOption(values, "rank", NaN, { integer: true, min: 1 });
  if (Number.isNaN(rank)) throw new UsageError("--rank is required");
  const seed = seedOption(values, NaN);
  if (Number.isNaN(seed)) throw new UsageError("--seed is required");
  const out = required(values, "out");
  const model = await loadModel(required(values, "model"));
  await writeRandomPeftAdapter(out, model.weights.config, {
    rank,
    seed,
    targets: targets as LinearTarget[],
    baseModel: model.name,
    alpha: stringOption(values, "alpha") === undefined ? undefined : numberOption(values, "alpha", 0, { min: 0 }),
    useRslora: values.rslora === true,
  });
  const { adapter } = await loadPeftAdapter(out, {
    config: model.weights.config,
    name: model.name,
    qkBasis: model.qkBasis,
    maxRank: rank,
  });
  console.log(`wrote ${out}: adapter ${adapter.id}, rank ${rank}, targets ${adapter.targets.join(",")}`);
}
