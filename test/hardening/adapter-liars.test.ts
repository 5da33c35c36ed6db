// Issue 13, item 4, between real nodes on 127.0.0.1 and a real (in-process Hardhat) registry: two staked peers
// announce adapters in GPU slots with empty queues (so they are tried first) and then one stalls (its answer
// never comes) and one answers not-found. The honest fetch does not wait for the per-peer timeout: after the
// first-byte deadline the next peer races the staller. Both liars get strikes, rank after clean peers, and are
// banned at the table's strike bound.
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "viem";
import type { AdapterFetcherEvents } from "../../node/p2p/adapter-fetcher.ts";
import type { AdapterBytesSource } from "../../node/p2p/adapter-protocol.ts";
import type { NodeState } from "../../node/p2p/announcer.ts";
import { STORIES_DIR } from "../helpers/stories.ts";
import { Cleanup, createChain, listAdapter, makeEngine, makePeer, until, type Chain } from "../p2p/helpers.ts";

let chain: Chain;
const cleanup = new Cleanup();
beforeAll(async () => {
  chain = await createChain();
});
afterEach(() => cleanup.run());
afterAll(() => cleanup.run());

/** A fetch timeout above what a loopback fetch of a small adapter takes, even on a loaded machine. */
const FETCH_TIMEOUT_MS = 8_000;

describe("peers that announce an adapter and then do not serve it (item 4)", () => {
  it("races past a staller after the first-byte deadline, strikes both liars, ranks them last, bans them", async () => {
    const origin = await makeEngine(cleanup);
    const ids: Record<string, Hex> = {};
    for (const name of ["dragon", "ocean", "robot"]) {
      ids[name] = (await origin.adapters.import(join(STORIES_DIR, "adapters", name))).id as Hex;
      await listAdapter(chain, ids[name], { engine: origin });
    }
    const { dragon, ocean, robot } = ids;
    await origin.adapters.remove(robot); // listed, but only the liars claim to hold it
    // The honest peer asks a price, so it ranks after the liars even when its adapters are in GPU slots too.
    const good = await makePeer(chain, cleanup, { staked: true, engine: origin, pricePerToken: 5n });

    const claimsAll: NodeState = {
      adapters: () => [dragon, ocean, robot].map((id) => ({ id, tier: "gpu" as const })),
      load: () => ({ queueDepth: 0, freeSlots: 4 }),
    };
    const stalls: AdapterBytesSource = { read: () => new Promise<null>(() => {}) }; // its answer never comes
    const missing: AdapterBytesSource = { read: async () => null }; // answers not-found
    const staller = await makePeer(chain, cleanup, {
      staked: true,
      state: claimsAll,
      adapterSource: stalls,
      bootstrap: good.host.dialAddrs(),
    });
    const liar = await makePeer(chain, cleanup, {
      staked: true,
      state: claimsAll,
      adapterSource: missing,
      bootstrap: good.host.dialAddrs(),
    });
    const engine = await makeEngine(cleanup);
    const node = await makePeer(chain, cleanup, {
      staked: true,
      engine,
      bootstrap: [good, staller, liar].map((p) => p.host.dialAddrs()[0]),
      maxStrikes: 2,
      // Entries live 10 s: on a loaded machine the tests' 1.5 s could lapse between announcements.
      timings: { fetchTimeoutMs: FETCH_TIMEOUT_MS, fetchFirstByteMs: 300, entryTtlMs: 10_000 },
    });
    await until("all three announced dragon", () => node.table.withAdapter(dragon).length === 3, 30_000);
    expect(node.candidates(dragon).at(-1)?.peerId).toBe(good.peerId); // the liars rank first by their claims

    const failures: AdapterFetcherEvents["failed"][] = [];
    node.fetcher!.on("failed", (f) => failures.push(f));

    // 1. The liars are tried first: the not-found one fails at once, the staller is raced after 300 ms; the
    //    honest peer serves it, long before the staller's timeout, and both liars get a strike.
    const first = await node.ensureAdapter(dragon);
    expect(first.from).toBe(good.peerId);
    // "stalled", not "timeout": the honest peer's bytes were in while the staller's attempt still ran, i.e.
    // before its timeout (8 s) ran out.
    expect(failures.map((f) => [f.peerId, f.code, f.struck, f.banned]).sort()).toEqual(
      [
        [staller.peerId, "stalled", true, false],
        [liar.peerId, "not-found", true, false],
      ].sort(),
    );
    expect(node.table.strikes(staller.peerId)).toBe(1);
    expect(node.table.strikes(liar.peerId)).toBe(1);
    expect(engine.adapters.has(dragon)).toBe(true);

    // 2. With strikes they rank after the clean peer, whatever they announce.
    expect(node.candidates(ocean)[0].peerId).toBe(good.peerId);

    // 3. Only the liars claim robot: the second strike bans each (the staller's after the configured timeout).
    failures.length = 0;
    const error = await node.ensureAdapter(robot).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "adapter_unavailable", reason: "all-failed" });
    expect(failures.map((f) => [f.peerId, f.code, f.banned]).sort()).toEqual(
      [
        [staller.peerId, "timeout", true],
        [liar.peerId, "not-found", true],
      ].sort(),
    );
    expect(node.table.isBanned(staller.peerId)).toBe(true);
    expect(node.table.isBanned(liar.peerId)).toBe(true);
    const holders = node.table.withAdapter(dragon).filter((e) => !e.local);
    expect(holders.map((e) => e.peerId)).toEqual([good.peerId]);

    // 4. Banned, they are not asked again: the next adapter comes from the honest peer without a failure.
    failures.length = 0;
    expect((await node.ensureAdapter(ocean)).from).toBe(good.peerId);
    expect(failures).toEqual([]);
  }, 120_000);
});
