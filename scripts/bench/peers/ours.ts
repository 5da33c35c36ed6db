// This project's side of the peer benchmark: the serving engine (scheduler, adapter tiers, SGMV batching) on a
// backend, with the benchmark's PEFT adapters imported; the same measurements as llama-cpp.ts's runner.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Backend } from "../../../node/engine/backend/backend.ts";
import type { LoadedModel } from "../../../node/engine/model/weights.ts";
import { Engine } from "../../../node/engine/runtime/engine.ts";
import { steadyRate, type PeerRunner } from "./llama-cpp.ts";

/** The runner; `adapterIds` maps each PEFT folder to the id the engine gave it. */
export async function ourRunner(
  model: LoadedModel,
  backend: Backend,
  peftDirs: readonly string[],
): Promise<PeerRunner & { adapterIds: Map<string, string> }> {
  const store = await mkdtemp(join(tmpdir(), "openlora-peers-"));
  const engine = await Engine.create({
    backend,
    tokenizer: model.tokenizer,
    modelName: model.name,
    qkBasis: model.qkBasis,
    adapterDir: store,
    scheduler: { maxBatchTokens: 512, maxRunning: 64 },
  });
  engine.start();
  const adapterIds = new Map<string, string>();
  for (const dir of peftDirs) adapterIds.set(dir, (await engine.adapters.import(dir)).id);
  const run = async (adapterId: string | null, tokenIds: number[], tokens: number, times: number[]): Promise<void> => {
    for await (const event of engine.submit({
      adapterId,
      tokenIds,
      maxTokens: tokens,
      temperature: 0,
      ignoreEos: true,
    })) {
      if (event.type === "token") times.push(performance.now());
    }
  };
  return {
    adapterIds,
    async decode(adapters, prompts, tokens) {
      // Adapters resident first, as llama.cpp's contexts hold theirs before the clock starts.
      for (const id of adapters) if (id !== null) await engine.adapters.load(id);
      const times = adapters.map((): number[] => []);
      await Promise.all(adapters.map((id, i) => run(id, prompts[i], tokens, times[i])));
      return steadyRate(times);
    },
    async ttft(prompt) {
      const started = performance.now();
      const times: number[] = [];
      await run(null, prompt, 1, times);
      return times[0] - started;
    },
    async close() {
      await engine.close();
      await rm(store, { recursive: true, force: true });
    },
  };
}
