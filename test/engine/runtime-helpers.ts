// Fixtures of the serving-engine suites: engines on stories260K, a reference "run alone", stream collection.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect } from "vitest";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import type { Backend, BackendOptions, SequenceStep } from "../../node/engine/backend/backend.ts";
import { createBackend } from "../../node/engine/backend/select.ts";
import { encodeAdapter } from "../../node/engine/adapter/canonical.ts";
import { complete } from "../../node/engine/runtime/complete.ts";
import { openEngine } from "../../node/engine/runtime/open-engine.ts";
import { Engine } from "../../node/engine/runtime/engine.ts";
import type { RequestStream } from "../../node/engine/runtime/request-stream.ts";
import type { SchedulerOptions, Usage } from "../../node/engine/runtime/types.ts";
import { stories } from "../helpers/stories.ts";

export interface TestEngine {
  engine: Engine;
  backend: Backend;
  dir: string;
}

/** The backends the engine suites run on: cpu (the reference), webgpu (lavapipe where there is no GPU), simd. */
export type TestBackend = "cpu" | "webgpu" | "simd";

export type EngineOptions = Partial<BackendOptions> & {
  backend?: TestBackend;
  scheduler?: Partial<SchedulerOptions>;
  hostBudgetBytes?: number;
  dir?: string;
  wrap?: (b: Backend) => Backend;
};

/** An engine on stories260K (cpu backend unless told); `wrap` may decorate the backend (step hooks, slow loads). */
export async function makeEngine(options: EngineOptions = {}): Promise<TestEngine> {
  const model = await stories();
  const inner = await createBackend(options.backend ?? "cpu", model.weights, {
    numBlocks: options.numBlocks ?? 64,
    blockSize: options.blockSize ?? 16,
    adapterSlots: options.adapterSlots ?? 4,
    maxRank: options.maxRank ?? 16,
  });
  const backend = options.wrap ? options.wrap(inner) : inner;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "openlora-store-")));
  const engine = await Engine.create({
    backend,
    tokenizer: model.tokenizer,
    modelName: model.name,
    adapterDir: dir,
    scheduler: options.scheduler,
    hostBudgetBytes: options.hostBudgetBytes,
  });
  engine.start();
  return { engine, backend, dir };
}

/** makeEngine for a test file: every engine it makes, and its backend, is closed after each test. */
export function closedAfterEachTest(): (options?: EngineOptions) => Promise<TestEngine> {
  let open: TestEngine[] = [];
  afterEach(async () => {
    await Promise.all(
      open.map(async ({ engine, backend }) => {
        await engine.close();
        await backend.close();
      }),
    );
    open = [];
  });
  return async (options = {}) => {
    const made = await makeEngine(options);
    open.push(made);
    return made;
  };
}

/**
 * A backend that calls `before(n, steps)` ahead of its n-th step (n from 0) and may slow adapter uploads down.
 * Everything else goes to `inner` itself (a class instance keeps its private state: no copies of its methods).
 */
export function hooked(
  inner: Backend,
  hooks: { before?: (step: number, steps: readonly SequenceStep[]) => void; uploadDelayMs?: number },
): Backend {
  let n = 0;
  const overrides: Pick<Backend, "sample" | "setAdapter"> = {
    async sample(steps, params, uniforms) {
      hooks.before?.(n++, steps);
      return inner.sample(steps, params, uniforms);
    },
    async setAdapter(slot, adapter) {
      if (hooks.uploadDelayMs) await new Promise((r) => setTimeout(r, hooks.uploadDelayMs));
      return inner.setAdapter(slot, adapter);
    },
  };
  return new Proxy(inner, {
    get(target, key) {
      if (key === "sample" || key === "setAdapter") return overrides[key];
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

export interface Collected {
  tokenIds: number[];
  text: string;
  usage: Usage;
}

/** Reads a stream to its end and checks that the streamed pieces add up to the final text. */
export async function collect(stream: RequestStream): Promise<Collected> {
  const tokenIds: number[] = [];
  let pieces = "";
  let final: { usage: Usage; text: string } | undefined;
  for await (const event of stream) {
    if (event.type === "token") tokenIds.push(event.tokenId);
    if (event.type !== "usage") pieces += event.text;
    else final = event;
  }
  expect(final).toBeDefined();
  expect(pieces).toBe(final!.text);
  const completion = await stream.result;
  expect(completion.tokenIds).toEqual(tokenIds);
  expect(final!.usage.completionTokens).toBe(tokenIds.length);
  return { tokenIds, text: final!.text, usage: final!.usage };
}

export type AloneRequest = {
  tokenIds: number[];
  maxTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  stop?: string[];
};

/** An engine of its own that runs requests one at a time, each alone: the oracle of batched runs. */
export interface Oracle {
  run(adapter: LoraAdapter | null, request: AloneRequest): Promise<{ tokenIds: number[]; text: string }>;
  close(): Promise<void>;
}

/**
 * Opens an oracle on a fresh backend (cpu unless told). One oracle for many requests saves creating a backend
 * per request where that is costly (a webgpu device, its pipelines and weights).
 */
export async function openOracle(backend: TestBackend = "cpu", maxRank = 16): Promise<Oracle> {
  const alone = await openEngine({ model: await stories(), backend, numBlocks: 40, adapterSlots: 1, maxRank });
  return {
    async run(adapter, request) {
      const adapterId = adapter ? (await alone.engine.adapters.add(encodeAdapter(adapter))).id : null;
      const result = await complete(alone.engine, { ...request, adapterId, temperature: request.temperature ?? 0 });
      return { tokenIds: result.tokenIds, text: result.text };
    },
    close: () => alone.close(),
  };
}

/** The oracle for one request: the same request alone, on a fresh engine and backend of its own. */
export async function runAlone(
  adapter: LoraAdapter | null,
  request: AloneRequest,
  backend: TestBackend = "cpu",
): Promise<{ tokenIds: number[]; text: string }> {
  const oracle = await openOracle(backend, Math.max(adapter?.rank ?? 1, 1));
  try {
    return await oracle.run(adapter, request);
  } finally {
    await oracle.close();
  }
}

/** Asserts the engine holds nothing: every KV block free, no pin, nothing queued or running. */
export function expectIdle(engine: Engine): void {
  const stats = engine.stats();
  expect(stats.kv.freeBlocks).toBe(stats.kv.totalBlocks);
  expect(stats.slots.every((s) => s.pins === 0)).toBe(true);
  expect(stats.queue).toEqual({ waiting: 0, running: 0, waitingForAdapter: 0 });
}
