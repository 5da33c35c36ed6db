// Announcements between real libp2p nodes on 127.0.0.1, checked against a real (in-process Hardhat) NodeRegistry:
// propagation along a line, dropping out on unstake, expiry, and every kind of forgery dropped and counted.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { LocalAccount } from "viem";
import {
  ANNOUNCE_TOPIC,
  ANNOUNCEMENT_VERSION,
  encodeAnnouncement,
  type AnnouncementBody,
} from "../../node/p2p/announcement.ts";
import { signAnnouncement } from "../../node/p2p/announcement-sig.ts";
import type { NodeState } from "../../node/p2p/announcer.ts";
import type { P2pHost } from "../../node/p2p/host.ts";
import type { PeerNode } from "../../node/p2p/peer-node.ts";
import {
  Cleanup,
  createChain,
  makeBareHost,
  makePeer,
  newOperator,
  stake,
  unstake,
  until,
  type Chain,
} from "./helpers.ts";

const ADAPTER = `0x${"ab".repeat(32)}` as const;
const state = (tier: "gpu" | "host" | "disk" = "gpu"): NodeState => ({
  adapters: () => [{ id: ADAPTER, tier }],
  load: () => ({ queueDepth: 0, freeSlots: 1 }),
});

let chain: Chain;
const cleanup = new Cleanup();
beforeAll(async () => {
  chain = await createChain();
});
afterEach(() => cleanup.run());
afterAll(() => cleanup.run());

describe("announcements along a line of 5 nodes", () => {
  it("reach the far end, leave with the stake, and expire", async () => {
    const nodes: (PeerNode & { operator: LocalAccount | null })[] = [];
    for (let i = 0; i < 5; i++) {
      nodes.push(
        await makePeer(chain, cleanup, {
          staked: true,
          state: state(),
          bootstrap: i > 0 ? nodes[i - 1].host.dialAddrs() : [],
        }),
      );
    }
    const [first, , , , last] = nodes;
    // Each end learns of the other through three relays (they are not connected).
    await until(
      "the ends to know each other",
      () => first.table.get(last.peerId) !== undefined && last.table.get(first.peerId) !== undefined,
    );
    expect(first.host.connectedPeers()).not.toContain(last.peerId);
    await until("every node to know the 4 others", () =>
      nodes.every((n) => n.table.entries().filter((e) => !e.local).length === 4),
    );
    const seen = first.table.get(last.peerId)!.announcement;
    expect(seen.adapters).toEqual([{ id: ADAPTER, tier: "gpu", listings: [] }]); // nobody lists it
    expect(seen.operator).toBe(last.operator!.address);
    expect(seen.multiaddrs).toEqual(last.host.multiaddrs());
    // Honest nodes cause no drops, except "replayed": gossip may deliver an older announcement late (through
    // IHAVE/IWANT) after a newer one, and the older is rightly not taken.
    for (const n of nodes)
      expect(Object.entries(n.table.drops).filter(([r, c]) => c > 0 && r !== "replayed")).toEqual([]);

    // The last node unstakes: within the stake cache's TTL everyone drops it, and its announcements stop at
    // its neighbour ("not-staked", not relayed).
    const removed = first.table.once("remove", (e) => e.entry.peerId === last.peerId);
    await unstake(chain, last.operator!);
    expect((await removed).reason).toBe("unstaked");
    await until("the neighbour to drop its announcements", () => nodes[3].table.drops["not-staked"] > 0);
    // Each node drops it when its own stake answer expires (its keeper re-checks): wait for all, not for one.
    await until("every node to drop the unstaked one", () =>
      nodes.slice(0, 4).every((n) => n.table.get(last.peerId) === undefined),
    );
    expect(first.table.drops["not-staked"]).toBe(0);

    // The first node goes away: its entry expires at the others after the TTL, counted from its last
    // announcement (the table's own clock: an ordering of events, not a measured duration).
    const expired = nodes[1].table.once("remove", (e) => e.entry.peerId === first.peerId);
    await first.stop();
    const { reason, entry } = await expired;
    const removedAt = Date.now();
    expect(reason).toBe("expired");
    expect(entry.expiresAt).toBe(entry.receivedAt + nodes[1].table.ttlMs);
    expect(removedAt).toBeGreaterThanOrEqual(entry.expiresAt); // the TTL, not an instant removal on disconnect
    await until("everyone to forget the first node", () =>
      nodes.slice(1, 4).every((n) => n.table.get(first.peerId) === undefined),
    );
  });
});

describe("forged announcements", () => {
  let victim: PeerNode;
  let honest: PeerNode & { operator: LocalAccount | null };

  /** A bare host connected to the victim and subscribed to the topic (so that its publishes reach it). */
  async function forger(): Promise<P2pHost> {
    const host = await makeBareHost(cleanup);
    host.pubsub.subscribe(ANNOUNCE_TOPIC);
    await host.connect(victim.host.dialAddrs()[0]);
    await until("the victim to see the forger's subscription", () =>
      host.pubsub.getSubscribers(ANNOUNCE_TOPIC).some((p) => p.toString() === victim.peerId),
    );
    return host;
  }

  function bodyFor(host: P2pHost, operator: LocalAccount, over: Partial<AnnouncementBody> = {}): AnnouncementBody {
    const now = Date.now();
    return {
      v: ANNOUNCEMENT_VERSION,
      peerId: host.peerId.toString(),
      operator: operator.address,
      multiaddrs: host.multiaddrs(),
      api: "",
      adapters: [{ id: ADAPTER, tier: "gpu", listings: [] }],
      pricePerToken: 1n,
      queueDepth: 0,
      freeSlots: 1,
      ts: now,
      seq: now,
      ...over,
    };
  }

  async function publishSigned(host: P2pHost, signer: LocalAccount, b: AnnouncementBody): Promise<void> {
    await host.publish(
      ANNOUNCE_TOPIC,
      encodeAnnouncement({ ...b, sig: await signAnnouncement(signer, b, victim.domain) }),
    );
  }

  async function expectDrop(reason: keyof PeerNode["table"]["drops"], count = 1): Promise<void> {
    await until(`a "${reason}" drop`, () => victim.table.drops[reason] >= count, 5_000);
  }

  it("are each dropped and counted by reason, their senders scored down, and the node keeps working", async () => {
    victim = await makePeer(chain, cleanup); // listens and verifies; announces nothing
    honest = await makePeer(chain, cleanup, { staked: true, state: state("host"), bootstrap: victim.host.dialAddrs() });
    await until("the honest node's entry", () => victim.table.get(honest.peerId) !== undefined);

    // Forger A has a staked operator bound to its peer id, so its own well-formed announcements are accepted.
    const a = await forger();
    const opA = await newOperator(chain);
    await stake(chain, opA, a.peerId.toString());
    const start = Date.now();
    await publishSigned(a, opA, bodyFor(a, opA, { seq: start }));
    await until("forger A's valid announcement", () => victim.table.get(a.peerId.toString()) !== undefined);

    // Stale: signed correctly, but from ten minutes ago.
    await publishSigned(a, opA, bodyFor(a, opA, { ts: start - 600_000, seq: start + 1 }));
    await expectDrop("stale");
    // Replayed: a seq not above the last accepted one.
    await publishSigned(a, opA, bodyFor(a, opA, { seq: start }));
    await expectDrop("replayed");
    // Unstaked operator: a correct signature by a key with no stake.
    const nobody = await newOperator(chain);
    await publishSigned(a, nobody, bodyFor(a, nobody, { seq: start + 2 }));
    await expectDrop("not-staked");
    // A staked operator bound to another peer id (the honest node's operator vouching for forger A).
    await publishSigned(a, honest.operator!, bodyFor(a, honest.operator!, { seq: start + 3 }));
    await expectDrop("peer-not-bound");

    // Forger B: a signature by the wrong key, then junk bytes. Rejected, so gossipsub scores B down.
    const b = await forger();
    await publishSigned(b, nobody, bodyFor(b, opA, { seq: start }));
    await expectDrop("bad-signature");
    await b.publish(ANNOUNCE_TOPIC, new TextEncoder().encode("{ not json"));
    await expectDrop("malformed");

    // Forger C: the honest node's genuine announcement re-published as its own, then one over the size bound.
    const c = await forger();
    const genuine = victim.table.get(honest.peerId)!.announcement;
    await c.publish(ANNOUNCE_TOPIC, encodeAnnouncement(genuine));
    await expectDrop("peer-mismatch");
    const huge = bodyFor(c, opA, { api: "x".repeat(100_000) });
    await c.publish(ANNOUNCE_TOPIC, encodeAnnouncement({ ...huge, sig: `0x${"00".repeat(65)}` }));
    await expectDrop("oversized");

    // Forger A floods: valid announcements past the rate bound are dropped.
    const flood = Array.from({ length: 20 }, (_, i) => bodyFor(a, opA, { seq: start + 10 + i }));
    for (const f of flood) await publishSigned(a, opA, f);
    await expectDrop("rate-limited");

    // Each kind counted once (the flood aside), and the rejected senders are in gossipsub's bad books.
    const { drops } = victim.table;
    for (const r of [
      "stale",
      "replayed",
      "not-staked",
      "peer-not-bound",
      "bad-signature",
      "malformed",
      "peer-mismatch",
      "oversized",
    ] as const) {
      expect(drops[r], r).toBe(1);
    }
    expect(drops["rate-limited"]).toBeGreaterThan(0);
    expect(drops.self + drops.version + drops.banned + drops["chain-error"]).toBe(0);
    // GossipSub's implementation has getScore; its interface type does not declare it.
    const score = (h: P2pHost) =>
      (victim.host.pubsub as unknown as { getScore(peerId: string): number }).getScore(h.peerId.toString());
    // (Scores are cached for one heartbeat, 1 s.)
    await until("the rejected senders' gossip scores to fall", () => score(b) < 0 && score(c) < 0, 3_000);

    // Nothing forged got in, and the victim still accepts the honest node's fresh announcements.
    expect(victim.table.get(b.peerId.toString())).toBeUndefined();
    expect(victim.table.get(c.peerId.toString())).toBeUndefined();
    const before = victim.table.get(honest.peerId)!.announcement.seq;
    await until("a newer honest announcement", () => (victim.table.get(honest.peerId)?.announcement.seq ?? 0) > before);
  });
});
