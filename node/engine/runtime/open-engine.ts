import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Backend } from "../backend/backend.ts";
import { createBackend, type BackendChoice } from "../backend/select.ts";
import { loadModel } from "../formats/load-model.ts";
import type { LoadedModel } from "../model/weights.ts";
import { Engine } from "./engine.ts";
import { DEFAULT_SCHEDULER } from "./scheduler.ts";
import { checkKvPool, servedContext } from "./sizing.ts";
import type { AdmissionOptions, SchedulerOptions } from "./types.ts";

export interface OpenEngineOptions {
  /** A model path (any format loadModel takes) or a model already loaded. */
  model: string | LoadedModel;
  /** Default "auto". */
  backend?: BackendChoice;
  /** simd backend: worker threads (default: the machine's available parallelism). */
  threads?: number;
  /** Other names PEFT adapters may give as this model's base_model_name_or_path (EngineOptions.modelAliases). */
  modelAliases?: readonly string[];
  /** The disk tier's folder. Default: a fresh temporary folder, deleted at close (one-shot use). */
  adapterDir?: string;
  /** Adapter slots on the device. Default 4; on a hardware GPU, what its memory holds (webgpu backend). */
  adapterSlots?: number;
  /** Largest adapter rank a slot holds. Default 64. */
  maxRank?: number;
  /** KV positions per block. Default 16. */
  blockSize?: number;
  /** Positions one sequence may hold. Default: the model's context length, at most 8192 (sizing.ts). */
  context?: number;
  /** KV blocks. Default: four served contexts; on a hardware GPU, what its memory holds (webgpu backend). */
  numBlocks?: number;
  hostBudgetBytes?: number;
  maxTokens?: number;
  /** Largest prompt text in bytes (EngineOptions.maxPromptBytes). */
  maxPromptBytes?: number;
  /** Work accepted in total and per owner (EngineOptions.admission). */
  admission?: Partial<AdmissionOptions>;
  scheduler?: Partial<SchedulerOptions>;
}

/** A started engine with the model and backend it owns; close() stops and frees all of it. */
export interface OpenedEngine {
  engine: Engine;
  model: LoadedModel;
  close(): Promise<void>;
}

/** Loads a model, creates its backend and a started Engine over it: everything one process needs to serve. */
export async function openEngine(options: OpenEngineOptions): Promise<OpenedEngine> {
  const model = typeof options.model === "string" ? await loadModel(options.model) : options.model;
  const blockSize = options.blockSize ?? 16;
  // The backend is sized by the context served, not by the one the file declares (up to 2^32-1).
  const context = servedContext(model.weights.config, options.context);
  const numBlocks = options.numBlocks ?? 4 * Math.ceil(context / blockSize);
  checkKvPool(model.weights.config, context, numBlocks, blockSize);
  const weights =
    context === model.weights.config.maxSeqLen
      ? model.weights
      : { ...model.weights, config: { ...model.weights.config, maxSeqLen: context } };
  const backend: Backend = await createBackend(options.backend ?? "auto", weights, {
    numBlocks,
    blockSize,
    adapterSlots: options.adapterSlots ?? 4,
    maxRank: options.maxRank ?? 64,
    threads: options.threads,
    deviceSizing: {
      sequences: options.scheduler?.maxRunning ?? DEFAULT_SCHEDULER.maxRunning,
      numBlocks: options.numBlocks === undefined,
      adapterSlots: options.adapterSlots === undefined,
    },
  });
  const temporary = options.adapterDir ? null : await mkdtemp(join(tmpdir(), "openlora-adapters-"));
  try {
    const engine = await Engine.create({
      backend,
      tokenizer: model.tokenizer,
      modelName: model.name,
      modelAliases: options.modelAliases,
      qkBasis: model.qkBasis,
      adapterDir: options.adapterDir ?? temporary!,
      hostBudgetBytes: options.hostBudgetBytes,
      maxTokensLimit: options.maxTokens,
      maxPromptBytes: options.maxPromptBytes,
      admission: options.admission,
      scheduler: options.scheduler,
    });
    engine.start();
    return {
      engine,
      model,
      close: async () => {
        await engine.close();
        await backend.close();
        if (temporary) await rm(temporary, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await backend.close();
    if (temporary) await rm(temporary, { recursive: true, force: true });
    throw error;
  }
}
