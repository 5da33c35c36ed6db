// /openlora/infer/1 between real nodes: the tokens equal the engine's own, a client that leaves mid-stream
// frees everything the request held in the engine, refusals come back as error frames, and routing fails over
// from a dead peer to a live one.
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "viem";
import type { Engine } from "../../node/engine/runtime/engine.ts";
import type { Usage } from "../../node/engine/runtime/types.ts";
import { infer, inferStream } from "../../node/p2p/infer-client.ts";
import { InferError } from "../../node/p2p/infer-frames.ts";
import { STORIES_DIR } from "../helpers/stories.ts";
import { Cleanup, createChain, makeEngine, makePeer, listAdapter, runLocal, until, type Chain } from "./helpers.ts";

let chain: Chain;
const cleanup = new Cleanup();
beforeAll(async () => {
  chain = await createChain();
});
afterEach(() => cleanup.run());
afterAll(() => cleanup.run());

function expectIdle(engine: Engine): void {
  const stats = engine.stats();
  expect(stats.kv.freeBlocks).toBe(stats.kv.totalBlocks);
  expect(stats.slots.every((s) => s.pins === 0)).toBe(true);
  expect(stats.queue).toEqual({ waiting: 0, running: 0, waitingForAdapter: 0 });
}

describe("inference over libp2p", () => {
  it("streams the engine's tokens, for the base model, an adapter and seeded sampling", async () => {
    const engine = await makeEngine(cleanup);
    const dragon = (await engine.adapters.import(join(STORIES_DIR, "adapters", "dragon"))).id as Hex;
    const finished: Usage[] = [];
    const server = await makePeer(chain, cleanup, {
      staked: true,
      engine,
      inference: { onFinished: (_r, usage) => finished.push(usage) },
    });
    const client = await makePeer(chain, cleanup, { bootstrap: server.host.dialAddrs() });
    const target = { peerId: server.peerId, multiaddrs: server.host.multiaddrs() };
    const requests = [
      { adapterId: null, prompt: "Once upon a time", maxTokens: 32, temperature: 0 },
      { adapterId: dragon, prompt: "The dragon", maxTokens: 32, temperature: 0 },
      { adapterId: dragon, tokenIds: [1, 403, 407], maxTokens: 20, temperature: 0.9, topP: 0.9, seed: 7 },
      { adapterId: null, prompt: "Lily and Max", maxTokens: 40, temperature: 0, stop: ["."] },
    ];
    for (const request of requests) {
      const local = await runLocal(engine, request);
      const pieces: string[] = [];
      const tokenIds: number[] = [];
      let usage: Usage | undefined;
      for await (const event of inferStream(client.host, target, request)) {
        if (event.type === "token") tokenIds.push(event.tokenId);
        if (event.type === "usage") usage = event.usage;
        else pieces.push(event.text);
      }
      expect(tokenIds).toEqual(local.tokenIds);
      expect(pieces.join("")).toBe(local.text);
      expect(usage?.completionTokens).toBe(local.tokenIds.length);
    }
    expect(finished).toHaveLength(requests.length);
    expectIdle(engine);
  });

  it("cancels the engine request when the client goes away mid-stream", async () => {
    const engine = await makeEngine(cleanup, { stepDelayMs: 15 }); // slow enough that the request is mid-flight
    const finished: Usage[] = [];
    const server = await makePeer(chain, cleanup, {
      staked: true,
      engine,
      inference: { onFinished: (_r, usage) => finished.push(usage) },
    });
    const client = await makePeer(chain, cleanup, { bootstrap: server.host.dialAddrs() });
    const target = { peerId: server.peerId, multiaddrs: server.host.multiaddrs() };
    let tokens = 0;
    for await (const event of inferStream(client.host, target, {
      adapterId: null,
      prompt: "Once upon a time",
      maxTokens: 400,
      temperature: 0,
    })) {
      if (event.type === "token" && ++tokens === 3) break; // leave: the stream is reset
    }
    await until("the engine to cancel the request", () => finished.length === 1);
    expect(finished[0].finishReason).toBe("cancelled");
    expect(finished[0].completionTokens).toBeLessThan(100);
    expectIdle(engine);

    // An aborted signal does the same from another angle (the connection stays up; only the stream goes).
    const abort = new AbortController();
    const run = (async () => {
      for await (const event of inferStream(
        client.host,
        target,
        { adapterId: null, prompt: "The sun was", maxTokens: 400, temperature: 0 },
        { signal: abort.signal },
      )) {
        if (event.type === "token") abort.abort(new Error("user pressed stop"));
      }
    })();
    await expect(run).rejects.toThrow("user pressed stop");
    await until("the second cancellation", () => finished.length === 2);
    expect(finished[1].finishReason).toBe("cancelled");
    expectIdle(engine);
    // The server still serves.
    const again = await infer(client.host, target, {
      adapterId: null,
      prompt: "The sun was",
      maxTokens: 5,
      temperature: 0,
    });
    expect(again.tokenIds).toHaveLength(5);
  });

  it("answers bad requests with an error frame", async () => {
    const engine = await makeEngine(cleanup);
    const server = await makePeer(chain, cleanup, { staked: true, engine });
    const client = await makePeer(chain, cleanup, { bootstrap: server.host.dialAddrs() });
    const target = { peerId: server.peerId, multiaddrs: server.host.multiaddrs() };
    const refusal = (request: Parameters<typeof infer>[2]) =>
      infer(client.host, target, request).then(
        () => null,
        (e: unknown) => e,
      );
    const badTemp = await refusal({ adapterId: null, prompt: "x", maxTokens: 4, temperature: -1 });
    expect(badTemp).toBeInstanceOf(InferError);
    expect(badTemp).toMatchObject({ code: "invalid_request" });
    expect(await refusal({ adapterId: null, maxTokens: 4 })).toMatchObject({
      code: "invalid_request",
      message: expect.stringContaining("exactly one of prompt and tokenIds"),
    });
    // An adapter nobody has (and the registry does not know) cannot be fetched: adapter_unavailable.
    expect(await refusal({ adapterId: `0x${"42".repeat(32)}`, prompt: "x", maxTokens: 4 })).toMatchObject({
      code: "adapter_unavailable",
    });
    // A payment hook that refuses.
    const paid = await makePeer(chain, cleanup, {
      staked: true,
      engine: await makeEngine(cleanup),
      inference: {
        authorize: async (r) => {
          if (r.voucher !== "ok") throw new InferError("unauthorized", "no voucher");
        },
      },
    });
    const paidTarget = { peerId: paid.peerId, multiaddrs: paid.host.multiaddrs() };
    await expect(infer(client.host, paidTarget, { adapterId: null, prompt: "x", maxTokens: 2 })).rejects.toMatchObject({
      code: "unauthorized",
    });
    expect(
      (await infer(client.host, paidTarget, { adapterId: null, prompt: "x", maxTokens: 2, voucher: "ok" })).tokenIds,
    ).toHaveLength(2);
    expectIdle(engine);
  });

  it("routes to the best announced peer and fails over when it is gone", async () => {
    const dragonDir = join(STORIES_DIR, "adapters", "dragon");
    const slowEngine = await makeEngine(cleanup);
    const dragon = (await slowEngine.adapters.import(dragonDir)).id as Hex;
    await listAdapter(chain, dragon, { engine: slowEngine });
    const fastEngine = await makeEngine(cleanup);
    await fastEngine.adapters.import(dragonDir);
    const a = await makePeer(chain, cleanup, { staked: true, engine: slowEngine, pricePerToken: 10n });
    const b = await makePeer(chain, cleanup, {
      staked: true,
      engine: fastEngine,
      pricePerToken: 1n,
      bootstrap: a.host.dialAddrs(),
    });
    const client = await makePeer(chain, cleanup, { bootstrap: [a.host.dialAddrs()[0], b.host.dialAddrs()[0]] });
    await until("the client to see both", () => client.candidates(dragon).length === 2);
    expect(client.candidates(dragon).map((c) => c.peerId)).toEqual([b.peerId, a.peerId]); // same tier and queue: cheaper first
    const request = { adapterId: dragon, prompt: "The dragon", maxTokens: 16, temperature: 0 };
    // The oracle runs on an engine of its own: running it on a or b would load dragon into a GPU slot there, and
    // the gpu tier (rightly) outranks the price.
    const oracle = await makeEngine(cleanup);
    await oracle.adapters.import(dragonDir);
    const expected = (await runLocal(oracle, request)).tokenIds;
    const first = await client.infer(request);
    expect(first).toMatchObject({ peerId: b.peerId, tokenIds: expected });
    // b disappears; its entry is still live at the client (until the TTL), so the first try fails and a serves.
    await b.stop();
    const second = await client.infer(request);
    expect(second).toMatchObject({ peerId: a.peerId, tokenIds: expected });
  });
});
