import { loadPeftAdapter } from "../../engine/adapter/peft.ts";
import { createBackend, type BackendChoice } from "../../engine/backend/select.ts";
import { loadModel } from "../../engine/formats/load-model.ts";
import { generate } from "../../engine/generate.ts";
import { numberOption, parseCommand, required, stringOption, UsageError, type CommandSpec } from "../args.ts";

const spec: CommandSpec = {
  summary: "Generate text from a model, optionally with a LoRA adapter.",
  usage: "openlora generate --model <dir|file> --prompt <text> [--adapter <dir>] [options]",
  options: {
    model: { type: "string" }, adapter: { type: "string" }, prompt: { type: "string" },
    "max-tokens": { type: "string" }, temperature: { type: "string" }, "top-p": { type: "string" }, "top-k": { type: "string" },
    seed: { type: "string" }, stop: { type: "string", multiple: true }, backend: { type: "string" }, "max-rank": { type: "string" },
    json: { type: "boolean" },
  },
  help: {
    model: "model folder or file: llama2.c .bin, .gguf, or a Hugging Face folder",
    adapter: "PEFT LoRA folder (adapter_config.json + adapter_model.safetensors)",
    prompt: "text to continue (\"\" starts from BOS)",
    "max-tokens": "tokens to generate (default 256)",
    temperature: "0 is greedy (default 1.0)",
    "top-p": "nucleus sampling mass in (0, 1] (default 0.9)",
    "top-k": "keep the k most likely tokens, 0 keeps all (default 0)",
    seed: "random seed; the same seed gives the same output (default 0)",
    stop: "stop before this text (repeatable)",
    backend: "cpu | webgpu | auto (default auto: webgpu where an adapter answers)",
    "max-rank": "largest adapter rank accepted (default 64)",
    json: "print one JSON object: text, tokenIds, promptTokenIds, adapterId, backend, msPerToken",
  },
};

export async function generateCommand(argv: string[]): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const { values } = args;
  const backendChoice = (stringOption(values, "backend") ?? "auto") as BackendChoice;
  if (!["cpu", "webgpu", "auto"].includes(backendChoice)) throw new UsageError(`--backend must be cpu, webgpu or auto, got "${backendChoice}"`);
  const prompt = stringOption(values, "prompt");
  if (prompt === undefined) throw new UsageError("--prompt is required (use --prompt \"\" to start from BOS)");
  const maxRank = numberOption(values, "max-rank", 64, { integer: true, min: 1 });

  const model = await loadModel(required(values, "model"));
  const adapterDir = stringOption(values, "adapter");
  const adapter = adapterDir
    ? (await loadPeftAdapter(adapterDir, { config: model.weights.config, name: model.name, qkBasis: model.qkBasis, maxRank })).adapter
    : null;
  const blockSize = 16;
  const backend = await createBackend(backendChoice, model.weights, {
    numBlocks: Math.ceil(model.weights.config.maxSeqLen / blockSize), blockSize, adapterSlots: 1, maxRank,
  });
  if (backendChoice === "auto") console.error(`[openlora] backend: ${backend.kind} (${backend.device})`);
  try {
    if (adapter) await backend.setAdapter(0, adapter);
    const json = values.json === true;
    if (!json) process.stdout.write(prompt);
    const result = await generate(backend, model.tokenizer, {
      prompt,
      slot: adapter ? 0 : -1,
      maxTokens: numberOption(values, "max-tokens", 256, { integer: true, min: 0 }),
      temperature: numberOption(values, "temperature", 1, { min: 0 }),
      topP: numberOption(values, "top-p", 0.9, { min: 0, max: 1 }),
      topK: numberOption(values, "top-k", 0, { integer: true, min: 0 }),
      seed: numberOption(values, "seed", 0, { integer: true, min: 0 }),
      stop: (values.stop as string[] | undefined) ?? [],
      onText: json ? undefined : (text) => process.stdout.write(text),
    });
    if (json) {
      console.log(JSON.stringify({
        text: result.text, tokenIds: result.tokenIds, promptTokenIds: result.promptTokenIds,
        adapterId: adapter?.id ?? null, backend: backend.kind, msPerToken: round(result.msPerToken), finishReason: result.finishReason,
      }));
    } else {
      process.stdout.write("\n");
      console.error(`[openlora] ${result.tokenIds.length} tokens, ${round(result.msPerToken)} ms/token, ${backend.kind}${adapter ? `, adapter ${adapter.id}` : ""}`);
    }
  } finally {
    await backend.close();
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
