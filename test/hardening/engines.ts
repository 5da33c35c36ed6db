// Engines on stories260K for the hardening suites, with the admission and prompt bounds these tests set, and a
// tokenizer whose calls are counted (to show what is refused before any tokenizing). Closed after each test.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
import { createBackend } from "../../node/engine/backend/select.ts";
import { Engine, type EngineOptions } from "../../node/engine/runtime/engine.ts";
import type { Tokenizer } from "../../node/engine/tokenizer/tokenizer.ts";
import { stories } from "../helpers/stories.ts";

export interface CountingTokenizer extends Tokenizer {
  /** Characters passed to encode or encodeAsync so far. */
  encodedChars: number;
}

/** The model's tokenizer, counting the text it is asked to encode. */
function counting(inner: Tokenizer): CountingTokenizer {
  const counted: CountingTokenizer = {
    encodedChars: 0,
    vocabSize: inner.vocabSize,
    bosId: inner.bosId,
    eosId: inner.eosId,
    eosIds: inner.eosIds,
    encode(text, options) {
      counted.encodedChars += text.length;
      return inner.encode(text, options);
    },
    decode: (ids) => inner.decode(ids),
    encodeAsync: inner.encodeAsync
      ? (text, options) => {
          counted.encodedChars += text.length;
          return inner.encodeAsync!(text, options);
        }
      : undefined,
  };
  return counted;
}

export type HardenedOptions = Pick<EngineOptions, "admission" | "maxPromptBytes" | "scheduler"> & {
  numBlocks?: number;
};

/** A started cpu engine on stories260K (blocks of 16 positions) for each call; every one is closed after each test. */
export function hardenedEngines(): (
  options?: HardenedOptions,
) => Promise<{ engine: Engine; tokenizer: CountingTokenizer }> {
  let open: { engine: Engine; close: () => Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(open.map(({ engine, close }) => engine.close().then(close)));
    open = [];
  });
  return async (options = {}) => {
    const model = await stories();
    const backend = await createBackend("cpu", model.weights, {
      numBlocks: options.numBlocks ?? 64,
      blockSize: 16,
      adapterSlots: 2,
      maxRank: 16,
    });
    const tokenizer = counting(model.tokenizer);
    const engine = await Engine.create({
      ...options,
      backend,
      tokenizer,
      modelName: model.name,
      adapterDir: await mkdtemp(join(tmpdir(), "openlora-hardened-")),
    });
    engine.start();
    open.push({ engine, close: () => backend.close() });
    return { engine, tokenizer };
  };
}
