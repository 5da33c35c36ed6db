import { join } from "node:path";
import { BACKEND_CHOICES, type BackendChoice } from "../../engine/backend/select.ts";
import { complete } from "../../engine/runtime/complete.ts";
import { openEngine } from "../../engine/runtime/open-engine.ts";
import { numberOption, parseCommand, stringOption, UsageError, type CommandSpec } from "../args.ts";

const spec: CommandSpec = {
  summary: "The embedded stories260K model continues a prompt with no adapter and with each demo adapter.",
  usage: "openlora demo [--prompt <text>] [--max-tokens N] [--backend cpu|webgpu|auto]",
  options: {
    prompt: { type: "string" },
    "max-tokens": { type: "string" },
    backend: { type: "string" },
    model: { type: "string" },
  },
  help: {
    prompt: 'prompt (default "Once upon a time")',
    "max-tokens": "tokens per story (default 60)",
    backend: `${BACKEND_CHOICES.join(" | ")} (default auto)`,
    model: "model folder with an adapters/ folder (default models/stories260K)",
  },
};

const DEMO_ADAPTERS = ["dragon", "ocean", "robot"];

export async function demoCommand(argv: string[]): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const modelDir = stringOption(args.values, "model") ?? "models/stories260K";
  const prompt = stringOption(args.values, "prompt") ?? "Once upon a time";
  const maxTokens = numberOption(args.values, "max-tokens", 60, { integer: true, min: 1 });
  const backend = (stringOption(args.values, "backend") ?? "auto") as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) {
    throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(", ")}, got "${backend}"`);
  }
  const opened = await openEngine({ model: modelDir, backend, adapterSlots: DEMO_ADAPTERS.length });
  const { engine, model } = opened;
  const device = `${engine.device.kind} (${engine.device.description})`;
  console.log(`OpenLoRA demo: ${model.name} (${model.format}) on ${device}, greedy, ${maxTokens} tokens\n`);
  try {
    const stories: [string, string | null][] = [["(no adapter)", null]];
    for (const name of DEMO_ADAPTERS) {
      const { id } = await engine.adapters.import(join(modelDir, "adapters", name));
      stories.push([`${name} ${id.slice(0, 18)}...`, id]);
    }
    for (const [label, adapterId] of stories) {
      const result = await complete(engine, { prompt, adapterId, maxTokens, temperature: 0 });
      const speed = `${result.tokenIds.length} tokens, ${result.msPerToken.toFixed(2)} ms/token`;
      console.log(`[${label}] ${prompt}${result.text}\n  (${speed})\n`);
    }
  } finally {
    await opened.close();
  }
}
