// Prefill of many tokens at once, held to an external reference. llama2.c's greedy output from BOS is fixed
// (greedy_empty_prompt_256.json); any prefix of it, fed as a prompt in one step (or in chunks), must continue
// with exactly the rest of it, since llama2.c computed each next token from that same prefix. A prefill that
// attends wrongly between the prompt's own positions (mask, positions, KV writes of a chunk) changes the hidden
// states the later layers read, and the continuation with them.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { oneShotEngine, STORIES_DIR } from "../helpers/stories.ts";

const reference = JSON.parse(await readFile(join(STORIES_DIR, "greedy_empty_prompt_256.json"), "utf8")) as {
  ids: number[];
};
const CONTINUATION = 24;

const whole = oneShotEngine();
// 7 tokens a step: a prompt spans several steps, chunk edges inside KV blocks of 16.
const chunked = oneShotEngine({ scheduler: { maxBatchTokens: 7 } });
// Blocks of 3 positions: every chunk crosses block boundaries.
const smallBlocks = oneShotEngine({ blockSize: 3, numBlocks: 200 });

describe("multi-token prefill against llama2.c's greedy output", () => {
  for (const length of [2, 9, 40, 150]) {
    it(`a prompt of the first ${length} reference tokens, prefilled in one step, continues as llama2.c did`, async () => {
      const result = await (
        await whole()
      ).complete({ tokenIds: reference.ids.slice(0, length), maxTokens: CONTINUATION, temperature: 0 });
      expect(result.tokenIds).toEqual(reference.ids.slice(length, length + CONTINUATION));
    });
  }

  for (const [name, engine] of [
    ["in chunks of 7 tokens", chunked],
    ["in KV blocks of 3 positions", smallBlocks],
  ] as const) {
    it(`prefilled ${name}, it continues the same`, async () => {
      for (const length of [20, 61]) {
        const result = await (
          await engine()
        ).complete({ tokenIds: reference.ids.slice(0, length), maxTokens: CONTINUATION, temperature: 0 });
        expect(result.tokenIds, `prompt of ${length}`).toEqual(reference.ids.slice(length, length + CONTINUATION));
      }
    });
  }
});
