// Preemption in the whole engine, on the cpu and webgpu backends: the younger of two requests is recomputed when the
// KV pool runs dry, the older never stops, and both give what they give alone. (The scheduler's own decisions are
// in scheduler.test.ts; this file is apart so that mutation testing of the scheduler runs those unit tests only.)
import { describe, expect, it } from "vitest";
import { stories } from "../helpers/stories.ts";
import { closedAfterEachTest, collect, expectIdle, runAlone } from "./runtime-helpers.ts";

const { tokenizer } = await stories();

describe("preemption in the engine", () => {
  const newEngine = closedAfterEachTest();

  for (const backend of ["cpu", "webgpu"] as const) {
    it(`on ${backend}: recomputes the younger of two requests when the pool runs dry; the older never stops, both match running alone`, async () => {
      // 10 blocks of 4 positions hold 40; two requests of 5 + 20 positions each need 50.
      const { engine } = await newEngine({ backend, numBlocks: 10, blockSize: 4 });
      const tokenIds = tokenizer.encode("Once upon a time", { bos: true });
      const older = engine.submit({ adapterId: null, tokenIds, maxTokens: 20, temperature: 0 });
      const younger = engine.submit({ adapterId: null, tokenIds, maxTokens: 20, temperature: 0 });
      const [a, b] = await Promise.all([collect(older), collect(younger)]);
      expect(a.usage.preemptions).toBe(0);
      expect(b.usage.preemptions).toBeGreaterThan(0);
      const alone = await runAlone(null, { tokenIds, maxTokens: 20 }, backend);
      expect(a.tokenIds).toEqual(alone.tokenIds);
      expect(b.tokenIds).toEqual(alone.tokenIds);
      expectIdle(engine);
    });
  }
});
