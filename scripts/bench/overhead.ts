// The engine's own cost per step, measured with a backend that does no arithmetic: planning, row assembly,
// sampling bookkeeping, detokenization and streaming for `batch` decoding sequences.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Backend } from "../../node/engine/backend/backend.ts";
import type { LoadedModel } from "../../node/engine/model/weights.ts";
import { Engine } from "../../node/engine/runtime/engine.ts";
import { prompts } from "./workloads.ts";

export async function engineOverheadMs(model: LoadedModel, batch: number, steps: number): Promise<number> {
  const config = model.weights.config;
  let n = 0;
  const nullBackend: Backend = {
    kind: "cpu",
    device: "null",
    config,
    memoryBytes: 0,
    options: { numBlocks: batch * Math.ceil((8 + steps + 2) / 16) + 1, blockSize: 16, adapterSlots: 1, maxRank: 1 },
    async setAdapter() {},
    async forward(s) {
      return new Float32Array(s.length * config.vocabSize);
    },
    // Ordinary tokens, never EOS: 3 + something that walks the vocabulary.
    async sample(s) {
      return Int32Array.from(s, (_, i) => 3 + ((n++ * 7919 + i) % (config.vocabSize - 3)));
    },
    async close() {},
  };
  const dir = await mkdtemp(join(tmpdir(), "openlora-overhead-"));
  const engine = await Engine.create({
    backend: nullBackend,
    tokenizer: model.tokenizer,
    modelName: model.name,
    adapterDir: dir,
    scheduler: { maxRunning: batch },
  });
  engine.start();
  try {
    const run = async (): Promise<number> => {
      const started = performance.now();
      await Promise.all(
        prompts(batch, 8, config.vocabSize, 9).map(
          (tokenIds) =>
            engine.submit({ adapterId: null, tokenIds, maxTokens: steps, temperature: 0, ignoreEos: true }).result,
        ),
      );
      return (performance.now() - started) / steps;
    };
    await run(); // warm-up
    return Math.min(await run(), await run());
  } finally {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  }
}
