// Issue 13, item 18, against a real (in-process Hardhat) AdapterRegistry: a request naming an unregistered
// listing or content hash costs one registry read, not one per request. The "no" is cached for a short TTL (a
// registration still shows within it), the clock is injected, and the keys remembered are capped.
import { randomBytes } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "viem";
import { ChainAdapterRegistry } from "../../node/p2p/adapter-registry.ts";
import { createChain, listAdapter, type Chain } from "../p2p/helpers.ts";

let chain: Chain;
beforeAll(async () => {
  chain = await createChain();
}, 60_000);

const randomId = (): Hex => `0x${randomBytes(32).toString("hex")}`;

function registry(now: () => number, max = 10_000): ChainAdapterRegistry {
  return new ChainAdapterRegistry({
    client: chain.publicClient,
    registry: chain.deployment.contracts.AdapterRegistry,
    ttlMs: 30_000,
    negativeTtlMs: 5_000,
    max,
    now,
  });
}

describe("unregistered ids cost one registry read (item 18)", () => {
  it("100 requests for one unregistered listing and content hash read the chain once each, until the TTL", async () => {
    let clock = 1_000;
    const view = registry(() => clock);
    const listingId = randomId();
    const contentHash = randomId();
    for (let i = 0; i < 100; i++) {
      expect(await view.listing(listingId)).toBeNull();
      expect(await view.listingsOf(contentHash)).toEqual([]);
    }
    expect(view.reads).toBe(2);

    // A registration made meanwhile shows once the short negative TTL has passed (not the 30 s of a "yes").
    const listed = await listAdapter(chain, contentHash, { size: 4096 });
    expect(await view.listingsOf(contentHash)).toEqual([]);
    clock += 5_001;
    const found = await view.listingsOf(contentHash);
    expect(found.map((l) => l.listingId.toLowerCase())).toEqual([listed.toLowerCase()]);
    expect(view.reads).toBe(4); // the content hash again, and its one listing
  }, 20_000);

  it("fresh unregistered ids each cost one read, and the keys remembered stay within max", async () => {
    let clock = 1_000;
    const view = registry(() => clock, 16);
    const ids = Array.from({ length: 64 }, randomId);
    for (const id of ids) expect(await view.listing(id)).toBeNull();
    expect(view.reads).toBe(64);
    // The 16 most recent are remembered: asking them again reads nothing; the oldest were forgotten.
    for (const id of ids.slice(-16)) await view.listing(id);
    expect(view.reads).toBe(64);
    await view.listing(ids[0]);
    expect(view.reads).toBe(65);
    clock += 1; // within the TTL nothing changes
    await view.listing(ids[63]);
    expect(view.reads).toBe(65);
  }, 20_000);
});
