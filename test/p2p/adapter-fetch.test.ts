// /openlora/adapter/1 between real nodes: a node without an adapter gets it from a peer (listing-checked,
// size-checked against the listing, sha256-verified) and then serves it; a peer sending corrupted bytes is banned
// and the next one tried; unlisted, retired, mislisted and impossibly sized adapters are refused.
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "viem";
import type { Engine } from "../../node/engine/runtime/engine.ts";
import { AdapterUnavailableError, type AdapterFetcherEvents } from "../../node/p2p/adapter-fetcher.ts";
import { fetchAdapterFrom, FetchError, type AdapterBytesSource } from "../../node/p2p/adapter-protocol.ts";
import { engineAdapterSource } from "../../node/p2p/engine-bridge.ts";
import { infer } from "../../node/p2p/infer-client.ts";
import { STORIES_DIR } from "../helpers/stories.ts";
import { canonicalSizeLimit } from "../../node/p2p/adapter-fetcher.ts";
import { Cleanup, createChain, listAdapter, makeEngine, makePeer, runLocal, until, type Chain } from "./helpers.ts";

let chain: Chain;
const cleanup = new Cleanup();
beforeAll(async () => {
  chain = await createChain();
});
afterEach(() => cleanup.run());
afterAll(() => cleanup.run());

async function engineWith(names: string[]): Promise<{ engine: Engine; ids: Record<string, Hex> }> {
  const engine = await makeEngine(cleanup);
  const ids: Record<string, Hex> = {};
  for (const name of names) ids[name] = (await engine.adapters.import(join(STORIES_DIR, "adapters", name))).id as Hex;
  return { engine, ids };
}

describe("adapter fetch", () => {
  it("gets an adapter from a peer after rejecting a peer that sends corrupted bytes, then serves it", async () => {
    const origin = await engineWith(["dragon", "ocean", "robot"]);
    const { dragon, ocean, robot } = origin.ids;
    const dragonSize = (await origin.engine.adapters.readBytes(dragon))!.length;
    const listing = await listAdapter(chain, dragon, { engine: origin.engine });
    const oceanListing = await listAdapter(chain, ocean, { engine: origin.engine, retired: true });
    // robot stays unlisted.
    const good = await makePeer(chain, cleanup, { staked: true, engine: origin.engine });

    // The liar announces dragon in a GPU slot with an empty queue (so it is tried first) and serves it with one
    // byte flipped.
    const honestSource = engineAdapterSource(origin.engine);
    const corrupt: AdapterBytesSource = {
      async read(id) {
        const bytes = await honestSource.read(id);
        if (!bytes) return null;
        const copy = Uint8Array.from(bytes);
        copy[copy.length - 1] ^= 0x01;
        return copy;
      },
    };
    const liar = await makePeer(chain, cleanup, {
      staked: true,
      adapterSource: corrupt,
      bootstrap: good.host.dialAddrs(),
      state: {
        adapters: () => [
          { id: dragon, tier: "gpu" },
          { id: ocean, tier: "gpu" },
          { id: robot, tier: "gpu" },
        ],
        load: () => ({ queueDepth: 0, freeSlots: 4 }),
      },
    });
    const { engine } = await engineWith([]);
    const fetcher = await makePeer(chain, cleanup, {
      staked: true,
      engine,
      bootstrap: [good.host.dialAddrs()[0], liar.host.dialAddrs()[0]],
    });
    await until("both holders announced", () => fetcher.table.withAdapter(dragon).length === 2);
    expect(fetcher.candidates(dragon).map((c) => c.peerId)).toEqual([liar.peerId, good.peerId]);

    const failures: AdapterFetcherEvents["failed"][] = [];
    fetcher.fetcher!.on("failed", (f) => failures.push(f));
    // A listing that declares another size than the bytes have: every holder's size is refused before a byte
    // is read, and nobody is banned for it (the listing may be the one that is wrong).
    const wrongSize = await listAdapter(chain, dragon, { registrant: chain.stranger, size: dragonSize + 1 });
    await expect(fetcher.ensureAdapter(dragon, { listingId: wrongSize })).rejects.toMatchObject({
      reason: "all-failed",
    });
    expect(failures.map((f) => [f.code, f.banned])).toEqual([
      ["wrong-size", false],
      ["wrong-size", false],
    ]);
    failures.length = 0;
    // A listing of other content, a retired listing, and a size no rank-8 adapter has on this model.
    await expect(fetcher.ensureAdapter(dragon, { listingId: oceanListing })).rejects.toMatchObject({
      reason: "wrong-listing",
    });
    await expect(fetcher.ensureAdapter(ocean, { listingId: oceanListing })).rejects.toMatchObject({
      reason: "retired",
    });
    const huge = canonicalSizeLimit(engine.model.config, 8) + 1;
    const impossible = await listAdapter(chain, dragon, { registrant: chain.author, size: huge });
    await expect(fetcher.ensureAdapter(dragon, { listingId: impossible })).rejects.toMatchObject({ reason: "size" });
    expect(failures).toEqual([]);
    expect(engine.adapters.has(dragon)).toBe(false);

    const got = await fetcher.ensureAdapter(dragon, { listingId: listing });
    expect(got.from).toBe(good.peerId);
    expect(got.bytes).toBeGreaterThan(0);
    expect(failures).toEqual([expect.objectContaining({ peerId: liar.peerId, code: "bad-bytes", banned: true })]);
    expect(fetcher.table.isBanned(liar.peerId)).toBe(true);
    expect(fetcher.table.get(liar.peerId)).toBeUndefined();
    expect(engine.adapters.has(dragon)).toBe(true);
    // A second call finds it at home.
    expect((await fetcher.ensureAdapter(dragon)).from).toBeNull();

    // It now announces the adapter, and serves it: a client's request through it gives the origin's tokens.
    await until(
      "the fetcher to announce dragon",
      () => good.table.get(fetcher.peerId)?.announcement.adapters.some((a) => a.id === dragon) ?? false,
    );
    const client = await makePeer(chain, cleanup, { bootstrap: fetcher.host.dialAddrs() });
    const request = { adapterId: dragon, prompt: "Once upon a time", maxTokens: 24, temperature: 0 };
    const remote = await infer(client.host, { peerId: fetcher.peerId, multiaddrs: fetcher.host.multiaddrs() }, request);
    expect(remote.tokenIds).toEqual((await runLocal(origin.engine, request)).tokenIds);
    // Another node can fetch it from the fetcher in turn (and would never ask the banned liar).
    const third = await makePeer(chain, cleanup, {
      staked: true,
      engine: (await engineWith([])).engine,
      bootstrap: fetcher.host.dialAddrs(),
    });
    await until("the third node to see the fetcher hold it", () =>
      third.table.withAdapter(dragon).some((e) => e.peerId === fetcher.peerId),
    );
    third.table.ban(liar.peerId, 60_000, "test: known liar");
    third.table.ban(good.peerId, 60_000, "test: only the fetcher may serve");
    expect((await third.ensureAdapter(dragon)).from).toBe(fetcher.peerId);

    // Retired and unlisted adapters are refused before any byte moves, even when a peer offers them.
    await expect(fetcher.ensureAdapter(ocean)).rejects.toMatchObject({ reason: "retired" });
    await expect(fetcher.ensureAdapter(robot)).rejects.toMatchObject({ reason: "unregistered" });
    await expect(fetcher.ensureAdapter(`0x${"99".repeat(32)}`)).rejects.toBeInstanceOf(AdapterUnavailableError);
    expect(engine.adapters.has(ocean) || engine.adapters.has(robot)).toBe(false);

    // The size is checked before reading: a header naming another size than the listing's ends the fetch.
    const goodPeer = { peerId: good.peerId, multiaddrs: good.host.multiaddrs() };
    const wrong = fetchAdapterFrom(fetcher.host, goodPeer, dragon, { sizes: [1000] });
    await expect(wrong).rejects.toMatchObject({ code: "wrong-size", peerFault: false });
    await expect(wrong).rejects.toBeInstanceOf(FetchError);
    const missing = fetchAdapterFrom(fetcher.host, goodPeer, `0x${"77".repeat(32)}`, { sizes: [1 << 20] });
    await expect(missing).rejects.toMatchObject({ code: "not-found" });
  });
});
