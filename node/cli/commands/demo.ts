import { join } from "node:path";
import { loadPeftAdapter } from "../../engine/adapter/peft.ts";
import { createBackend, type BackendChoice } from "../../engine/backend/select.ts";
import { loadModel } from "../../engine/formats/load-model.ts";
import { generate } from "../../engine/generate.ts";
import { numberOption, parseCommand, stringOption, type CommandSpec } from "../args.ts";

const spec: CommandSpec = {
  summary: "The main job: the embedded stories260K model continues a prompt with no adapter and with each demo adapter.",
  usage: "openlora demo [--prompt <text>] [--max-tokens N] [--backend cpu|webgpu|auto]",
  options: { prompt: { type: "string" }, "max-tokens": { type: "string" }, backend: { type: "string" }, model: { type: "string" } },
  help: {
    prompt: "prompt (default \"Once upon a time\")",
    "max-tokens": "tokens per story (default 60)",
    backend: "cpu | webgpu | auto (default auto)",
    model: "model folder with an adapters/ folder (default models/stories260K)",
  },
};

export async function demoCommand(argv: string[]): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const modelDir = stringOption(args.values, "model") ?? "models/stories260K";
  const prompt = stringOption(args.values, "prompt") ?? "Once upon a time";
  const maxTokens = numberOption(args.values, "max-tokens", 60, { integer: true, min: 1 });
  const model = await loadModel(modelDir);
  const names = ["dragon", "ocean", "robot"];
  const backend = await createBackend((stringOption(args.values, "backend") ?? "auto") as BackendChoice, model.weights, {
    numBlocks: 4 * Math.ceil(model.weights.config.maxSeqLen / 16), blockSize: 16, adapterSlots: names.length, maxRank: 64,
  });
  console.log(`OpenLoRA demo: ${model.name} (${model.format}) on ${backend.kind} (${backend.device}), greedy, ${maxTokens} tokens\n`);
  try {
    for (const [slot, name] of [[-1, "base"], ...names.map((n, i) => [i, n])] as [number, string][]) {
      let label = "(no adapter)";
      if (slot >= 0) {
        const { adapter } = await loadPeftAdapter(join(modelDir, "adapters", name), { config: model.weights.config, name: model.name, qkBasis: model.qkBasis, maxRank: 64 });
        await backend.setAdapter(slot, adapter);
        label = `${name} ${adapter.id.slice(0, 18)}...`;
      }
      const result = await generate(backend, model.tokenizer, { prompt, slot, maxTokens, temperature: 0 });
      console.log(`[${label}] ${prompt}${result.text}\n  (${result.tokenIds.length} tokens, ${result.msPerToken.toFixed(2)} ms/token)\n`);
    }
  } finally {
    await backend.close();
  }
}
