// Shared fixtures of the engine suites: the embedded stories260K model and its demo adapters.
import { join } from "node:path";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import { loadPeftAdapter } from "../../node/engine/adapter/peft.ts";
import { afterAll } from "vitest";
import { loadModel } from "../../node/engine/formats/load-model.ts";
import type { LoadedModel } from "../../node/engine/model/weights.ts";
import { complete, type CompleteResult } from "../../node/engine/runtime/complete.ts";
import { openEngine, type OpenedEngine, type OpenEngineOptions } from "../../node/engine/runtime/open-engine.ts";
import type { EngineRequest } from "../../node/engine/runtime/types.ts";

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
  const { adapter } = await loadPeftAdapter(join(STORIES_DIR, "adapters", name), {
    config: m.weights.config,
    name: m.name,
    qkBasis: m.qkBasis,
    maxRank,
  });
  return adapter;
}

/** A one-shot engine on a model: `complete` runs one request (adapter none unless given) to its end. */
export interface OneShot extends OpenedEngine {
  complete(
    request: Omit<EngineRequest, "adapterId"> & { adapterId?: string | null },
    onText?: (text: string) => void,
  ): Promise<CompleteResult>;
}

/** Opens a one-shot cpu engine on stories260K (or `options.model`), once per test file, closed after it. */
export function oneShotEngine(options: Partial<OpenEngineOptions> = {}): () => Promise<OneShot> {
  let opened: Promise<OneShot> | undefined;
  afterAll(async () => {
    await (await opened)?.close();
  });
  return () => {
    opened ??= (async () => {
      const made = await openEngine({
        backend: "cpu",
        adapterSlots: 4,
        ...options,
        model: options.model ?? (await stories()),
      });
      return { ...made, complete: (request, onText) => complete(made.engine, { adapterId: null, ...request }, onText) };
    })();
    return opened;
  };
}
