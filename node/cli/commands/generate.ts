import { BACKEND_CHOICES, type BackendChoice } from "../../engine/backend/select.ts";
import { loadModel } from "../../engine/formats/load-model.ts";
import { complete } from "../../engine/runtime/complete.ts";
import { openEngine } from "../../engine/runtime/open-engine.ts";
import { chatTemplateOf, type ChatMessage } from "../../engine/tokenizer/chat-template.ts";
import {
  numberOption,
  parseCommand,
  required,
  stringOption,
  UsageError,
  seedOption,
  type CommandSpec,
} from "../args.ts";

const spec: CommandSpec = {
  summary: "Generate text from a model, optionally with a LoRA adapter.",
  usage: "openlora generate --model <dir|file> --prompt <text> [--chat [--system <text>]] [--adapter <dir>] [options]",
  options: {
    model: { type: "string" },
    adapter: { type: "string" },
    prompt: { type: "string" },
    "max-tokens": { type: "string" },
    temperature: { type: "string" },
    "top-p": { type: "string" },
    "top-k": { type: "string" },
    seed: { type: "string" },
    stop: { type: "string", multiple: true },
    backend: { type: "string" },
    threads: { type: "string" },
    "max-rank": { type: "string" },
    chat: { type: "boolean" },
    system: { type: "string" },
    "model-alias": { type: "string", multiple: true },
    context: { type: "string" },
    json: { type: "boolean" },
  },
  help: {
    model: "model folder or file: llama2.c .bin, .gguf, or a Hugging Face folder",
    adapter: "PEFT LoRA folder (adapter_config.json + adapter_model.safetensors)",
    prompt: 'text to continue ("" starts from BOS)',
    "max-tokens": "tokens to generate (default 256)",
    temperature: "0 is greedy (default 1.0)",
    "top-p": "nucleus sampling mass in (0, 1] (default 0.9)",
    "top-k": "keep the k most likely tokens, 0 keeps all (default 0)",
    seed: "random seed; the same seed gives the same output (default 0)",
    stop: "stop before this text (repeatable)",
    backend: `${BACKEND_CHOICES.join(" | ")} (default auto: webgpu on a GPU, simd on a software adapter or none)`,
    threads: "simd backend: worker threads (default: the machine's cores)",
    "max-rank": "largest adapter rank accepted (default 64)",
    chat: "--prompt is a user message: the model's chat template (tokenizer_config.json or GGUF) makes the prompt, its EOS ends the reply",
    system: "with --chat: a system message before the user's",
    "model-alias": "another name of the model that the adapter's base_model_name_or_path may give (repeatable)",
    context: "positions the KV cache holds (default: the model's context, at most 8192)",
    json: "print one JSON object: text, tokenIds, promptTokenIds, adapterId, backend, msPerToken, finishReason",
  },
};

export async function generateCommand(argv: string[]): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const { values } = args;
  const backendChoice = (stringOption(values, "backend") ?? "auto") as BackendChoice;
  if (!BACKEND_CHOICES.includes(backendChoice)) {
    throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(", ")}, got "${backendChoice}"`);
  }
  const prompt = stringOption(values, "prompt");
  if (prompt === undefined) throw new UsageError('--prompt is required (use --prompt "" to start from BOS)');
  const chat = values.chat === true;
  const system = stringOption(values, "system");
  if (system !== undefined && !chat) throw new UsageError("--system needs --chat");
  const maxRank = numberOption(values, "max-rank", 64, { integer: true, min: 1 });
  const request = {
    prompt,
    maxTokens: numberOption(values, "max-tokens", 256, { integer: true, min: 0 }),
    temperature: numberOption(values, "temperature", 1, { min: 0 }),
    topP: numberOption(values, "top-p", 0.9, { min: 0, max: 1 }),
    topK: numberOption(values, "top-k", 0, { integer: true, min: 0 }),
    seed: seedOption(values, 0),
    stop: (values.stop as string[] | undefined) ?? [],
  };

  const threads =
    stringOption(values, "threads") === undefined
      ? undefined
      : numberOption(values, "threads", 1, { integer: true, min: 1 });
  const model = await loadModel(required(values, "model"));
  // One sequence at a time: a KV pool of one context (Llama 3's 131072 positions would not fit most memories).
  const context = numberOption(values, "context", Math.min(model.weights.config.maxSeqLen, 8192), {
    integer: true,
    min: 1,
  });
  const modelAliases = (values["model-alias"] as string[] | undefined) ?? [];
  const opened = await openEngine({
    model,
    backend: backendChoice,
    adapterSlots: 1,
    maxRank,
    threads,
    modelAliases,
    context,
    numBlocks: Math.ceil(context / 16),
    blockSize: 16,
  });
  const { engine } = opened;
  if (backendChoice === "auto")
    console.error(`[openlora] backend: ${engine.device.kind} (${engine.device.description})`);
  try {
    if (chat) {
      const template = chatTemplateOf(model);
      const messages: ChatMessage[] = [
        ...(system === undefined ? [] : [{ role: "system" as const, content: system }]),
        { role: "user", content: prompt },
      ];
      request.prompt = template.render(messages);
      request.stop = [...request.stop, ...template.stop];
    }
    const adapterDir = stringOption(values, "adapter");
    const adapterId = adapterDir ? (await engine.adapters.import(adapterDir)).id : null;
    const json = values.json === true;
    if (!json && !chat) process.stdout.write(prompt);
    const result = await complete(engine, { ...request, adapterId }, json ? undefined : (t) => process.stdout.write(t));
    const finishReason = result.usage.finishReason;
    if (json) {
      console.log(
        JSON.stringify({
          text: result.text,
          tokenIds: result.tokenIds,
          promptTokenIds: result.promptTokenIds,
          adapterId,
          backend: engine.device.kind,
          msPerToken: round(result.msPerToken),
          finishReason,
        }),
      );
    } else {
      process.stdout.write("\n");
      const adapterNote = adapterId ? `, adapter ${adapterId}` : "";
      const speed = `${round(result.msPerToken)} ms/token`;
      console.error(`[openlora] ${result.tokenIds.length} tokens, ${speed}, ${engine.device.kind}${adapterNote}`);
    }
  } finally {
    await opened.close();
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
