// Fixtures of the serving-engine suites: engines on stories260K, a reference "run alone", stream collection.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect } from "vitest";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import type { Backend, BackendOptions, SequenceStep } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
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

export type EngineOptions = Partial<BackendOptions> & { scheduler?: Partial<SchedulerOptions>; hostBudgetBytes?: number; dir?: string; wrap?: (b: Backend) => Backend };

/** An engine on stories260K with a CPU backend; `wrap` may decorate the backend (step hooks, slow loads). */
export async function makeEngine(options: EngineOptions = {}): Promise<TestEngine> {
  const model = await stories();
  const inner = createCpuBackend(model.weights, {
    numBlocks: options.numBlocks ?? 64, blockSize: options.blockSize ?? 16, adapterSlots: options.adapterSlots ?? 4, maxRank: options.maxRank ?? 16,
  });
  const backend = options.wrap ? options.wrap(inner) : inner;
  const dir = options.dir ?? await mkdtemp(join(tmpdir(), "openlora-store-"));
  const engine = await Engine.create({
    backend, tokenizer: model.tokenizer, modelName: model.name, adapterDir: dir, scheduler: options.scheduler, hostBudgetBytes: options.hostBudgetBytes,
  });
  engine.start();
  return { engine, backend, dir };
}

/** makeEngine for a test file: every engine it makes is closed after each test. */
export function closedAfterEachTest(): (options?: EngineOptions) => Promise<TestEngine> {
  let open: Engine[] = [];
  afterEach(async () => {
    await Promise.all(open.map((e) => e.close()));
    open = [];
  });
  return async (options = {}) => {
    const made = await makeEngine(options);
    open.push(made.engine);
    return made;
  };
}

/** A backend that calls `before(n, steps)` ahead of its n-th step (n from 0) and may slow adapter uploads down. */
export function hooked(inner: Backend, hooks: { before?: (step: number, steps: readonly SequenceStep[]) => void; uploadDelayMs?: number }): Backend {
  let n = 0;
  return {
    ...inner,
    async sample(steps, params, uniforms) {
      hooks.before?.(n++, steps);
      return inner.sample(steps, params, uniforms);
    },
    async setAdapter(slot, adapter) {
      if (hooks.uploadDelayMs) await new Promise((r) => setTimeout(r, hooks.uploadDelayMs));
      return inner.setAdapter(slot, adapter);
    },
  };
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

/** The oracle: the same request alone, on a fresh engine and backend of its own. */
export async function runAlone(adapter: LoraAdapter | null, request: { tokenIds: number[]; maxTokens: number; temperature?: number; topP?: number; topK?: number; seed?: number; stop?: string[] }): Promise<{ tokenIds: number[]; text: string }> {
  const alone = await openEngine({ model: await stories(), backend: "cpu", numBlocks: 40, adapterSlots: 1, maxRank: Math.max(adapter?.rank ?? 1, 1) });
  try {
    const adapterId = adapter ? (await alone.engine.adapters.add(encodeAdapter(adapter))).id : null;
    const result = await complete(alone.engine, { ...request, adapterId, temperature: request.temperature ?? 0 });
    return { tokenIds: result.tokenIds, text: result.text };
  } finally {
    await alone.close();
  }
}

/** Asserts the engine holds nothing: every KV block free, no pin, nothing queued or running. */
export function expectIdle(engine: Engine): void {
  const stats = engine.stats();
  expect(stats.kv.freeBlocks).toBe(stats.kv.totalBlocks);
  expect(stats.slots.every((s) => s.pins === 0)).toBe(true);
  expect(stats.queue).toEqual({ waiting: 0, running: 0, waitingForAdapter: 0 });
}
