// Shared fixtures of the engine suites: the embedded stories260K model and its demo adapters.
import { join } from "node:path";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import { loadPeftAdapter } from "../../node/engine/adapter/peft.ts";
import { loadModel } from "../../node/engine/formats/load-model.ts";
import type { LoadedModel } from "../../node/engine/model/weights.ts";

export const STORIES_DIR = join(import.meta.dirname, "../../models/stories260K");
export const DEMO_ADAPTERS = ["dragon", "ocean", "robot"] as const;

let model: Promise<LoadedModel> | undefined;

/** stories260K from its llama2.c checkpoint, loaded once per test file. */
export function stories(): Promise<LoadedModel> {
  model ??= loadModel(STORIES_DIR);
  return model;
}

/** A demo adapter, loaded against stories260K. */
export async function demoAdapter(name: (typeof DEMO_ADAPTERS)[number], maxRank = 64): Promise<LoraAdapter> {
  const m = await stories();
  const { adapter } = await loadPeftAdapter(join(STORIES_DIR, "adapters", name), { config: m.weights.config, name: m.name, qkBasis: m.qkBasis, maxRank });
  return adapter;
}
