// Fetch on request, the success path, between real nodes on 127.0.0.1 and a real (in-process Hardhat) registry:
// a client asks a node for an adapter the node does not hold; the node fetches it from the peer that announces
// it (registry-checked, sha256-verified), serves the request, and the tokens equal the origin's own.
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "viem";
import type { FetchedAdapter } from "../../node/p2p/adapter-fetcher.ts";
import { infer, inferStream } from "../../node/p2p/infer-client.ts";
import { STORIES_DIR } from "../helpers/stories.ts";
import { Cleanup, createChain, makeEngine, makePeer, listAdapter, runLocal, until, type Chain } from "./helpers.ts";

let chain: Chain;
const cleanup = new Cleanup();
beforeAll(async () => {
  chain = await createChain();
});
afterEach(() => cleanup.run());
afterAll(() => cleanup.run());

describe("fetch on request", () => {
  it("a node asked for an adapter it lacks fetches it from the announcing peer, then serves the origin's tokens", async () => {
    const originEngine = await makeEngine(cleanup);
    const dragon = (await originEngine.adapters.import(join(STORIES_DIR, "adapters", "dragon"))).id as Hex;
    await listAdapter(chain, dragon, { engine: originEngine });
    const origin = await makePeer(chain, cleanup, { staked: true, engine: originEngine });

    const engine = await makeEngine(cleanup);
    const server = await makePeer(chain, cleanup, { staked: true, engine, bootstrap: origin.host.dialAddrs() });
    await until("the server to see the origin announce dragon", () =>
      server.table.withAdapter(dragon).some((e) => e.peerId === origin.peerId),
    );
    expect(engine.adapters.has(dragon)).toBe(false);
    const fetched: FetchedAdapter[] = [];
    server.fetcher!.on("fetched", (f) => fetched.push(f));

    // The client talks to the server only; the request names an adapter the server has never seen.
    const client = await makePeer(chain, cleanup, { bootstrap: server.host.dialAddrs() });
    const target = { peerId: server.peerId, multiaddrs: server.host.multiaddrs() };
    const request = { adapterId: dragon, prompt: "Once upon a time", maxTokens: 32, temperature: 0 };
    const expected = await runLocal(originEngine, request);
    const pieces: string[] = [];
    const tokenIds: number[] = [];
    for await (const event of inferStream(client.host, target, request)) {
      if (event.type === "token") tokenIds.push(event.tokenId);
      if (event.type !== "usage") pieces.push(event.text);
    }
    expect(tokenIds).toEqual(expected.tokenIds);
    expect(pieces.join("")).toBe(expected.text);
    expect(expected.text.startsWith(", there was a funny dragon named Max.")).toBe(true);

    // Fetched once, from the origin, verified into the server's own store; the next request needs no fetch.
    expect(fetched).toEqual([expect.objectContaining({ id: dragon, from: origin.peerId })]);
    expect(fetched[0].bytes).toBe((await originEngine.adapters.readBytes(dragon))!.length);
    expect(engine.adapters.has(dragon)).toBe(true);
    expect(await engine.adapters.readBytes(dragon)).toEqual(await originEngine.adapters.readBytes(dragon));
    const again = await infer(client.host, target, { ...request, prompt: "The dragon", maxTokens: 12 });
    expect(again.tokenIds).toEqual(
      (await runLocal(originEngine, { ...request, prompt: "The dragon", maxTokens: 12 })).tokenIds,
    );
    expect(fetched).toHaveLength(1);
  });
});
