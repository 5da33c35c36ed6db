// Listings in announcements, between real nodes on 127.0.0.1 and a real (in-process Hardhat) AdapterRegistry: a
// node announces, for each adapter it holds (by content hash), the live listings of it that it serves; the same
// weights listed by two registrants are both served; a retired listing leaves the announcements (no new use), a
// new one joins; an operator's filter keeps only the listings it wants; clients route a paid request by listing.
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Hex } from "viem";
import type { PeerNode } from "../../node/p2p/peer-node.ts";
import { STORIES_DIR } from "../helpers/stories.ts";
import { Cleanup, createChain, listAdapter, makeEngine, makePeer, until, type Chain } from "./helpers.ts";

let chain: Chain;
const cleanup = new Cleanup();
beforeAll(async () => {
  chain = await createChain();
});
afterEach(() => cleanup.run());
afterAll(() => cleanup.run());

/** The listings `observer` last saw `node` announce for content `id` (undefined: not announced). */
function announced(observer: PeerNode, node: PeerNode, id: Hex): Hex[] | undefined {
  return observer.table.get(node.peerId)?.announcement.adapters.find((a) => a.id === id)?.listings;
}

describe("listings in announcements", () => {
  it("carry every live listing served, follow retirements and new listings, and route paid requests", async () => {
    const engine = await makeEngine(cleanup);
    const [dragon, ocean] = await Promise.all(
      ["dragon", "ocean"].map(
        async (name) => (await engine.adapters.import(join(STORIES_DIR, "adapters", name))).id as Hex,
      ),
    );
    const owners = await listAdapter(chain, dragon, { engine });
    const copy = await listAdapter(chain, dragon, { engine, registrant: chain.stranger }); // the same weights, listed again
    const oceans = await listAdapter(chain, ocean, { engine });
    const node = await makePeer(chain, cleanup, { staked: true, engine });
    // Another node with the same weights serves only the adapter owner's listings (an operator's choice).
    const other = await makeEngine(cleanup);
    await other.adapters.import(join(STORIES_DIR, "adapters", "dragon"));
    const picky = await makePeer(chain, cleanup, {
      staked: true,
      engine: other,
      bootstrap: node.host.dialAddrs(),
      serveListing: (l) => l.registrant === chain.adapterOwner.account.address,
    });
    const client = await makePeer(chain, cleanup, { bootstrap: [node.host.dialAddrs()[0], picky.host.dialAddrs()[0]] });

    const both = [owners, copy].sort();
    await until(
      "the node's listings to reach the client",
      () => announced(client, node, dragon)?.join() === both.join(),
    );
    expect(announced(client, node, ocean)).toEqual([oceans]);
    await until("the picky node's listings", () => announced(client, picky, dragon)?.join() === owners);
    // Routing by content hash sees both holders; by listing, only those serving it.
    expect(
      client
        .candidates(dragon)
        .map((c) => c.peerId)
        .sort(),
    ).toEqual([node.peerId, picky.peerId].sort());
    expect(client.candidates(dragon, copy).map((c) => c.peerId)).toEqual([node.peerId]);
    expect(client.candidates(dragon, owners)).toHaveLength(2);
    expect(client.candidates(ocean, copy)).toEqual([]); // a listing of other content is no route to this one
    expect(client.table.withListing(oceans).map((e) => e.peerId)).toEqual([node.peerId]);

    // The copy is retired: it leaves the announcements, and no paid request is routed to it any more.
    await chain.wait(chain.as(chain.stranger).adapterRegistry.write.retire([copy]));
    await until("the retirement to reach the announcements", () => announced(client, node, dragon)?.join() === owners);
    expect(client.candidates(dragon, copy)).toEqual([]);
    // A listing registered later joins them.
    const later = await listAdapter(chain, dragon, { engine, registrant: chain.author });
    const now = [owners, later].sort().join();
    await until("the new listing to reach the announcements", () => announced(client, node, dragon)?.join() === now);
    expect(announced(client, picky, dragon)).toEqual([owners]); // still filtered
    expect(node.listings.of(dragon).sort()).toEqual([owners, later].sort());
  });
});
