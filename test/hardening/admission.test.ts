// Issue 13, items 1 and 3: a peer that sends huge prompts or floods the queue. Each test performs the attack and
// shows, by counts and step numbers (no clocks), that the node stays bounded and an honest owner keeps its pace.
import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { EngineBusyError, InvalidRequestError } from "../../node/engine/errors.ts";
import type { Engine } from "../../node/engine/runtime/engine.ts";
import type { EngineRequest } from "../../node/engine/runtime/types.ts";
import { stories } from "../helpers/stories.ts";
import { hardenedEngines } from "./engines.ts";

const makeEngine = hardenedEngines();

/** Prose of `bytes` bytes (words and spaces, as a real prompt). */
function prose(bytes: number): string {
  return "Once upon a time there was a little dog named Max who loved the sun. "
    .repeat(Math.ceil(bytes / 60))
    .slice(0, bytes);
}

function busyOf(run: () => unknown): EngineBusyError {
  let error: unknown;
  try {
    run();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(EngineBusyError);
  return error as EngineBusyError;
}

describe("huge prompts (item 1)", () => {
  it("refuses a 256 KiB prompt by its byte length before tokenizing any of it", async () => {
    const { engine, tokenizer } = await makeEngine();
    const attack = prose(256 * 1024);
    for (let i = 0; i < 4; i++) {
      expect(() => engine.submit({ adapterId: null, prompt: attack, maxTokens: 8, owner: "mallory" })).toThrow(
        /prompt has 262144 bytes, more than the 8192 accepted \(maxPromptBytes\)/,
      );
    }
    expect(tokenizer.encodedChars).toBe(0);
    expect(engine.stats().admission.requests).toBe(0);
  });

  it("tokenizes a long prompt in slices with turns of the event loop between them, to the same ids as at once", async () => {
    const model = await stories();
    const text = prose(200 * 1024);
    let turns = 0;
    let ticking = true;
    const ticker = (async () => {
      while (ticking) {
        turns++;
        await nextTurn();
      }
    })();
    const sliced = await model.tokenizer.encodeAsync!(text, { bos: true });
    ticking = false;
    await ticker;
    expect(sliced).toEqual(model.tokenizer.encode(text, { bos: true }));
    // 200 KiB in slices of 512 characters: the loop ran other work between at least 399 of them.
    expect(turns).toBeGreaterThanOrEqual(399);
  });

  it("serves an honest request while four long prompts are tokenized; those fail on their streams, not the process", async () => {
    const { engine } = await makeEngine({ maxPromptBytes: 64 * 1024 });
    const attacks = Array.from({ length: 4 }, () =>
      engine.submit({ adapterId: null, prompt: prose(60 * 1024), maxTokens: 8, owner: "mallory" }),
    );
    expect(engine.stats().admission.tokenizing).toBe(4);
    const honest = await engine.submit({ adapterId: null, prompt: "Once upon a time", maxTokens: 8, temperature: 0 })
      .result;
    expect(honest.tokenIds.length).toBe(8);
    // The honest request ran to its end while the long prompts were still being tokenized.
    expect(engine.stats().admission.tokenizing).toBeGreaterThan(0);
    for (const attack of attacks) {
      const error = await attack.result.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidRequestError);
      expect((error as Error).message).toMatch(/prompt has \d+ tokens, the context holds 512/);
    }
    expect(engine.stats().admission).toEqual({ requests: 0, tokens: 0, owners: 0, tokenizing: 0 });
  });
});

describe("admission bounds (item 3)", () => {
  it("answers busy beyond the total bound of requests, with a retry time, and accepts again once work drains", async () => {
    const { engine } = await makeEngine({ admission: { maxRequests: 8 } });
    const request: EngineRequest = { adapterId: null, prompt: "Once", maxTokens: 4, temperature: 0 };
    const accepted = Array.from({ length: 8 }, () => engine.submit(request));
    const busy = busyOf(() => engine.submit(request));
    expect(busy.code).toBe("busy");
    expect(busy.retryAfterMs).toBeGreaterThanOrEqual(250);
    expect(busy.message).toMatch(/the node holds 8 requests/);
    await Promise.all(accepted.map((s) => s.result));
    expect((await engine.submit(request).result).tokenIds.length).toBe(4);
    expect(engine.stats().busy).toBe(1);
  });

  it("bounds the queue by tokens too: a few huge requests fill it as many small ones would", async () => {
    const { engine } = await makeEngine({ admission: { maxTokens: 1000 } });
    const stop = new AbortController();
    const big: EngineRequest = { adapterId: null, tokenIds: [1, 2, 3], maxTokens: 400, signal: stop.signal };
    const held = [engine.submit(big), engine.submit(big)];
    expect(busyOf(() => engine.submit(big)).message).toMatch(/806 tokens \(bounds 4096 and 1000\)/);
    expect(engine.stats().admission).toMatchObject({ requests: 2, tokens: 806 });
    stop.abort();
    for (const s of held) expect((await s.result).usage.finishReason).toBe("cancelled");
    expect(engine.stats().admission).toMatchObject({ requests: 0, tokens: 0 });
  });

  it("20,000 requests from 3 identities: each holds at most its share, the rest is busy, an honest owner gets in", async () => {
    const { engine } = await makeEngine({ admission: { maxRequests: 256 } });
    const aborts = new AbortController();
    let accepted = 0;
    let busy = 0;
    for (let i = 0; i < 20_000; i++) {
      try {
        engine.submit({
          adapterId: null,
          tokenIds: [1, 2],
          maxTokens: 100,
          owner: `sybil-${i % 3}`,
          signal: aborts.signal,
        });
        accepted++;
      } catch (error) {
        if (!(error instanceof EngineBusyError)) throw error;
        busy++;
      }
    }
    // 256 x 1/4 = 64 per identity.
    expect(accepted).toBe(3 * 64);
    expect(busy).toBe(20_000 - 3 * 64);
    expect(engine.stats().admission).toMatchObject({ requests: 192, owners: 3 });
    const honest = engine.submit({ adapterId: null, tokenIds: [1, 2], maxTokens: 2, owner: "alice" });
    expect((await honest.result).tokenIds.length).toBe(2);
    aborts.abort();
  });
});

describe("admission takes room back for a newcomer (item 3)", () => {
  it("when the totals are full, the heaviest owner's youngest queued request yields to an owner below its part", async () => {
    const { engine } = await makeEngine({ admission: { maxRequests: 8, ownerShare: 1 / 2 } });
    const request = (owner: string): EngineRequest => ({
      adapterId: null,
      tokenIds: [1, 2],
      maxTokens: 4,
      temperature: 0,
      owner,
    });
    // Two heavy owners fill the totals with their shares (4 + 4 of 8); nothing has started yet.
    const heavy = ["mallory", "trudy"].flatMap((owner) =>
      Array.from({ length: 4 }, () => engine.submit(request(owner))),
    );
    expect(engine.stats().admission).toMatchObject({ requests: 8, owners: 2 });
    // A newcomer's fair part is 8 / 3: its first two requests each take a queued one back, the third is busy.
    const newcomer = [engine.submit(request("alice")), engine.submit(request("alice"))];
    expect(busyOf(() => engine.submit(request("alice"))).message).toMatch(/the node holds 8 requests/);
    expect(engine.stats().admission).toMatchObject({ requests: 8, owners: 3 });

    const outcomes = await Promise.all(heavy.map((s) => s.result.then(() => "done").catch((e: unknown) => e)));
    const yielded = outcomes.filter((o) => o instanceof EngineBusyError) as EngineBusyError[];
    // One of each heavy owner's, the youngest: the last submitted of mallory (index 3) and of trudy (index 7).
    expect(outcomes.map((o) => (o === "done" ? "done" : "busy"))).toEqual([
      "done",
      "done",
      "done",
      "busy",
      "done",
      "done",
      "done",
      "busy",
    ]);
    for (const error of yielded) {
      expect(error.message).toMatch(/queued request yielded its place to another owner \(it held 4 requests/);
      expect(error.retryAfterMs).toBeGreaterThanOrEqual(250);
    }
    for (const s of newcomer) expect((await s.result).tokenIds.length).toBe(4);
  });
});

/** Steps the engine runs from submit until the request ends; past `giveUpAfter` steps, `onLong` is called. */
async function stepsUntilDone(
  engine: Engine,
  request: EngineRequest,
  giveUpAfter = Infinity,
  onLong = (): void => {},
): Promise<{ steps: number; tokenIds: number[] }> {
  let steps = 0;
  const off = engine.on("step", () => {
    if (++steps === giveUpAfter + 1) onLong();
  });
  const { tokenIds } = await engine.submit(request).result;
  off();
  return { steps, tokenIds };
}

describe("fair scheduling under 3 identities x 32 streams (item 3)", () => {
  const honest: EngineRequest = {
    adapterId: null,
    prompt: "Lily saw a",
    maxTokens: 16,
    temperature: 0,
    owner: "alice",
  };

  async function underAttack(owners: (i: number) => string | undefined) {
    // A batch of 16 rows (not the default 64) keeps the cpu steps of this test short; the shares scale with it.
    const { engine } = await makeEngine({ numBlocks: 1024, scheduler: { maxRunning: 16 } });
    const idle = await stepsUntilDone(engine, honest);
    const stop = new AbortController();
    const attack = Array.from({ length: 96 }, (_, i) =>
      engine.submit({
        adapterId: null,
        prompt: prose(200),
        maxTokens: 300,
        ignoreEos: true,
        owner: owners(i),
        signal: stop.signal,
      }),
    );
    // Let the attack in before the honest request comes: one queue fills the batch (16 rows); three owners each run
    // a sequence at least (the step cost cap lets each owner in as its part of a step allows).
    const inBatch = owners(0) === undefined ? 16 : 3;
    await engine.once("step", () => engine.stats().queue.running >= inBatch);
    // Past 4x the idle steps the attack is called off (the point is made), so a slow run ends all the same.
    const request = owners(0) === undefined ? { ...honest, owner: undefined } : honest;
    const attacked = await stepsUntilDone(engine, request, 4 * idle.steps, () => stop.abort());
    stop.abort();
    await Promise.all(attack.map((s) => s.result));
    return { idle, attacked };
  }

  it("keeps the honest owner's latency in steps within 2x of an idle node's, with the same tokens", async () => {
    const { idle, attacked } = await underAttack((i) => `sybil-${i % 3}`);
    expect(attacked.tokenIds).toEqual(idle.tokenIds);
    expect(attacked.steps).toBeLessThanOrEqual(2 * idle.steps);
  });

  it("without owners (everyone one queue) the same request waits behind the flood: what the shares prevent", async () => {
    const { idle, attacked } = await underAttack(() => undefined);
    expect(attacked.steps).toBeGreaterThan(4 * idle.steps);
  });
});
