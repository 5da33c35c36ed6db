// The announcement validator as a unit, on an injected clock: every drop reason deterministically (today a broken
// signer check would only show as a gossip timeout), the boundaries of freshness and rate, which verdicts make
// gossipsub score the sender down, and that the cheap checks run before the signature and the chain.
// Signatures are real (EIP-712 by local keys); the stake oracle answers what each test says.
import { describe, expect, it } from "vitest";
import type { Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { AnnouncementValidator } from "../../node/p2p/announce-validator.ts";
import { signAnnouncement } from "../../node/p2p/announcement-sig.ts";
import {
  ANNOUNCEMENT_VERSION,
  DEFAULT_ANNOUNCEMENT_LIMITS,
  encodeAnnouncement,
  type AnnouncementBody,
} from "../../node/p2p/announcement.ts";
import { PeerTable } from "../../node/p2p/peer-table.ts";
import type { StakeStatus } from "../../node/p2p/stake-oracle.ts";

const domain = { chainId: 31337, verifyingContract: "0x5FbDB2315678afecb367f032d93F642f64180aa3" } as const;
const otherDomain = { chainId: 1, verifyingContract: domain.verifyingContract } as const;
const AUTHOR = "12D3KooWPywKQz1NSpnhVGQwzzvpCWuazMR5xhdZHAhW567oGUxW";
const SELF = "12D3KooWNSFqPWxk9m9QJFucu1pJ5Z4GKjaKXnUhJNKhyFHoaeJL";
const RELAY = "12D3KooWAEtVkdL8AnexX9Fybua8JfBNinDkqW5t4LgHz7SwJncg";
const T0 = 1_800_000_000_000;
const operator = privateKeyToAccount(generatePrivateKey());
const stranger = privateKeyToAccount(generatePrivateKey());

function body(over: Partial<AnnouncementBody> = {}): AnnouncementBody {
  return {
    v: ANNOUNCEMENT_VERSION,
    peerId: AUTHOR,
    operator: operator.address,
    multiaddrs: ["/ip4/127.0.0.1/tcp/4001"],
    api: "",
    adapters: [{ id: `0x${"ab".repeat(32)}` as Hex, tier: "gpu", listings: [] }],
    pricePerToken: 5n,
    queueDepth: 0,
    freeSlots: 1,
    ts: T0,
    seq: 1,
    ...over,
  };
}

/** Wire bytes of a body signed by `signer` (the operator unless told) for `signDomain`. */
async function wire(
  over: Partial<AnnouncementBody> = {},
  signer = operator,
  signDomain: typeof domain | typeof otherDomain = domain,
): Promise<Uint8Array> {
  const b = body(over);
  return encodeAnnouncement({ ...b, sig: await signAnnouncement(signer, b, signDomain) });
}

/** A validator on a clock the test moves; the oracle's answer is set per test and its calls are counted. */
function setup(
  options: {
    maxAgeMs?: number;
    maxFutureMs?: number;
    capacity?: number;
    refillPerSecond?: number;
    lookups?: { capacity: number; refillPerSecond: number };
  } = {},
) {
  const clock = { now: T0 };
  const oracle = { answer: "active" as StakeStatus | Error, calls: 0 };
  const table = new PeerTable({ now: () => clock.now, ttlMs: 60_000 });
  const validator = new AnnouncementValidator({
    table,
    domain,
    selfPeerId: SELF,
    now: () => clock.now,
    maxAgeMs: options.maxAgeMs,
    maxFutureMs: options.maxFutureMs,
    rate: { capacity: options.capacity ?? 10, refillPerSecond: options.refillPerSecond ?? 4 },
    lookups: options.lookups,
    oracle: {
      check: async () => {
        oracle.calls++;
        if (oracle.answer instanceof Error) throw oracle.answer;
        return oracle.answer;
      },
    },
  });
  return { clock, oracle, table, validator };
}

describe("announcement validator: signatures", () => {
  it("accepts an announcement signed by the operator it names, and stores it", async () => {
    const { validator, table, oracle } = setup();
    const verdict = await validator.admit(AUTHOR, AUTHOR, await wire());
    expect(verdict).toMatchObject({ ok: true, announcement: { peerId: AUTHOR, operator: operator.address, seq: 1 } });
    expect(table.get(AUTHOR)?.announcement.seq).toBe(1);
    expect(table.get(AUTHOR)?.receivedAt).toBe(T0);
    expect(oracle.calls).toBe(1);
  });

  it("rejects (and penalizes) a signature by another key, for another domain, or over other contents; the chain is not asked", async () => {
    const { validator, table, oracle } = setup();
    const byStranger = await wire({}, stranger);
    const forMainnet = await wire({}, operator, otherDomain);
    const tampered = JSON.parse(new TextDecoder().decode(await wire()));
    tampered.pricePerToken = "1";
    const cases = [byStranger, forMainnet, new TextEncoder().encode(JSON.stringify(tampered))];
    for (const bytes of cases) {
      const verdict = await validator.admit(AUTHOR, RELAY, bytes);
      expect(verdict).toMatchObject({ ok: false, reason: "bad-signature", penalize: true });
      expect(verdict.ok || verdict.detail).toMatch(new RegExp(`names ${operator.address}`));
    }
    expect(table.drops["bad-signature"]).toBe(3);
    expect(table.get(AUTHOR)).toBeUndefined();
    expect(oracle.calls).toBe(0);
  });

  it("names the recovered signer in the drop's detail", async () => {
    const { validator } = setup();
    const verdict = await validator.check(AUTHOR, AUTHOR, await wire({}, stranger));
    expect(verdict).toMatchObject({ ok: false, detail: `signed by ${stranger.address}, names ${operator.address}` });
  });
});

describe("announcement validator: freshness (ts) on the injected clock", () => {
  it("takes ts from now - maxAge to now + maxFuture inclusive, drops (without penalty) what is outside", async () => {
    const { validator, clock, table } = setup({ maxAgeMs: 30_000, maxFutureMs: 10_000 });
    clock.now = T0 + 30_000;
    expect((await validator.admit(AUTHOR, AUTHOR, await wire({ ts: T0, seq: 1 }))).ok).toBe(true);
    expect(await validator.admit(AUTHOR, AUTHOR, await wire({ ts: T0 - 1, seq: 2 }))).toMatchObject({
      ok: false,
      reason: "stale",
      penalize: false,
      detail: `ts ${T0 - 1}, now ${T0 + 30_000}`,
    });
    expect((await validator.admit(AUTHOR, AUTHOR, await wire({ ts: T0 + 40_000, seq: 3 }))).ok).toBe(true);
    expect(await validator.admit(AUTHOR, AUTHOR, await wire({ ts: T0 + 40_001, seq: 4 }))).toMatchObject({
      ok: false,
      reason: "stale",
      penalize: false,
    });
    expect(table.drops.stale).toBe(2);
  });

  it("uses 30 s and 10 s by default, and judges by the clock at arrival, not the clock at signing", async () => {
    const signedAtT0 = await wire({ ts: T0, seq: 1 });
    for (const [arrival, ok] of [
      [T0 + 30_000, true],
      [T0 + 30_001, false],
      [T0 - 10_000, true],
      [T0 - 10_001, false],
    ] as const) {
      const { validator, clock } = setup();
      clock.now = arrival;
      expect((await validator.check(AUTHOR, AUTHOR, signedAtT0)).ok, `arrival at T0 ${arrival - T0} ms`).toBe(ok);
    }
  });
});

describe("announcement validator: replays", () => {
  it("takes only a seq above the last accepted one of that peer, and keeps the newer entry", async () => {
    const { validator, table } = setup();
    expect((await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 5 }))).ok).toBe(true);
    for (const seq of [5, 4, 0]) {
      expect(await validator.admit(AUTHOR, RELAY, await wire({ seq, queueDepth: 9 }))).toMatchObject({
        ok: false,
        reason: "replayed",
        penalize: false,
        detail: `seq ${seq} <= 5`,
      });
    }
    expect(table.get(AUTHOR)?.announcement.queueDepth).toBe(0);
    expect((await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 6, queueDepth: 2 }))).ok).toBe(true);
    expect(table.get(AUTHOR)?.announcement.queueDepth).toBe(2);
    expect(table.drops.replayed).toBe(3);
  });

  it("does not let an older announcement that finished checking last replace a newer one", async () => {
    const { validator, table } = setup();
    const [older, newer] = [await wire({ seq: 7 }), await wire({ seq: 8 })];
    // Both pass check() (neither seq is below the last stored one); admit() re-checks before storing.
    const [first, second] = [validator.check(AUTHOR, AUTHOR, older), validator.check(AUTHOR, AUTHOR, newer)];
    expect((await first).ok && (await second).ok).toBe(true);
    expect((await validator.admit(AUTHOR, AUTHOR, newer)).ok).toBe(true);
    expect(await validator.admit(AUTHOR, AUTHOR, older)).toMatchObject({ ok: false, reason: "replayed" });
    expect(table.get(AUTHOR)?.announcement.seq).toBe(8);
  });

  it("remembers the seq after the entry expired", async () => {
    const { validator, table, clock } = setup();
    expect((await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 3 }))).ok).toBe(true);
    clock.now = T0 + 60_000;
    expect(table.sweep()).toBe(1);
    expect(table.get(AUTHOR)).toBeUndefined();
    expect(await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 3, ts: clock.now }))).toMatchObject({
      ok: false,
      reason: "replayed",
    });
  });
});

describe("announcement validator: who sent it", () => {
  it("rejects (and penalizes) an announcement whose peer id is not its gossip author's", async () => {
    const { validator, oracle } = setup();
    const verdict = await validator.admit(RELAY, RELAY, await wire());
    expect(verdict).toMatchObject({
      ok: false,
      reason: "peer-mismatch",
      penalize: true,
      detail: `names ${AUTHOR}, sent by ${RELAY}`,
    });
    expect(oracle.calls).toBe(0);
  });

  it("drops our own announcements coming back, by author or by body", async () => {
    const { validator } = setup();
    expect(await validator.check(SELF, RELAY, await wire())).toMatchObject({
      ok: false,
      reason: "self",
      penalize: false,
    });
    expect(await validator.check(SELF, RELAY, await wire({ peerId: SELF }))).toMatchObject({
      ok: false,
      reason: "self",
    });
  });

  it("drops a banned author's announcements until the ban ends", async () => {
    const { validator, table, clock } = setup();
    table.ban(AUTHOR, 1_000, "served bad bytes");
    expect(await validator.check(AUTHOR, AUTHOR, await wire())).toMatchObject({
      ok: false,
      reason: "banned",
      penalize: false,
    });
    clock.now = T0 + 1_001;
    expect((await validator.check(AUTHOR, AUTHOR, await wire({ ts: clock.now }))).ok).toBe(true);
  });

  it("refuses unsigned gossip, oversized, malformed and other-version messages before reading further", async () => {
    const { validator, oracle } = setup();
    expect(await validator.check(null, RELAY, await wire())).toMatchObject({
      ok: false,
      reason: "malformed",
      penalize: true,
      detail: "unsigned gossip message",
    });
    const huge = new Uint8Array(DEFAULT_ANNOUNCEMENT_LIMITS.maxBytes + 1).fill(0x20);
    expect(await validator.check(AUTHOR, AUTHOR, huge)).toMatchObject({
      ok: false,
      reason: "oversized",
      penalize: true,
      detail: `${huge.length} bytes`,
    });
    expect(await validator.check(AUTHOR, AUTHOR, new TextEncoder().encode("[1, 2]"))).toMatchObject({
      ok: false,
      reason: "malformed",
      penalize: true,
    });
    const next = new TextEncoder().encode(JSON.stringify({ v: ANNOUNCEMENT_VERSION + 1, whatever: true }));
    expect(await validator.check(AUTHOR, AUTHOR, next)).toMatchObject({
      ok: false,
      reason: "version",
      penalize: false,
    });
    expect(oracle.calls).toBe(0);
  });
});

describe("announcement validator: rate on the injected clock", () => {
  it("lets a burst of `capacity` through, then one per refill interval; the author is penalized, a relay is not", async () => {
    const { validator, clock } = setup({ capacity: 3, refillPerSecond: 4 });
    const verdicts = [];
    for (let seq = 1; seq <= 4; seq++) verdicts.push(await validator.check(AUTHOR, AUTHOR, await wire({ seq })));
    expect(verdicts.map((v) => v.ok)).toEqual([true, true, true, false]);
    expect(verdicts[3]).toMatchObject({ reason: "rate-limited", penalize: true, detail: `from ${AUTHOR}` });
    expect(await validator.check(AUTHOR, RELAY, await wire({ seq: 5 }))).toMatchObject({
      ok: false,
      reason: "rate-limited",
      penalize: false,
    });
    clock.now = T0 + 249; // a token takes 250 ms to come back
    expect((await validator.check(AUTHOR, AUTHOR, await wire({ seq: 6 }))).ok).toBe(false);
    clock.now = T0 + 250;
    expect((await validator.check(AUTHOR, AUTHOR, await wire({ seq: 7 }))).ok).toBe(true);
    expect((await validator.check(AUTHOR, AUTHOR, await wire({ seq: 8 }))).ok).toBe(false);
  });

  it("counts per author: another peer is not slowed down by a flooder", async () => {
    const { validator } = setup({ capacity: 1 });
    expect((await validator.check(AUTHOR, AUTHOR, await wire({ seq: 1 }))).ok).toBe(true);
    expect((await validator.check(AUTHOR, AUTHOR, await wire({ seq: 2 }))).ok).toBe(false);
    const other = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
    expect(await validator.check(other, other, await wire({ peerId: other }))).not.toMatchObject({
      reason: "rate-limited",
    });
  });
});

describe("announcement validator: stake", () => {
  it("drops an unstaked operator's announcement and its entry, an unbound peer's, and (unpenalized) a chain failure", async () => {
    const { validator, table, oracle } = setup();
    expect((await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 1 }))).ok).toBe(true);
    oracle.answer = new Error("rpc down");
    expect(await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 2 }))).toMatchObject({
      ok: false,
      reason: "chain-error",
      penalize: false,
      detail: "rpc down",
    });
    expect(table.get(AUTHOR)).toBeDefined();
    oracle.answer = "peer-not-bound";
    expect(await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 3 }))).toMatchObject({
      ok: false,
      reason: "peer-not-bound",
      penalize: false,
    });
    expect(table.get(AUTHOR)).toBeDefined();
    oracle.answer = "inactive";
    const removed = table.once("remove");
    expect(await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 4 }))).toMatchObject({
      ok: false,
      reason: "not-staked",
      penalize: false,
      detail: operator.address,
    });
    expect((await removed).reason).toBe("unstaked");
    expect(table.get(AUTHOR)).toBeUndefined();
    expect(table.drops).toMatchObject({ "chain-error": 1, "peer-not-bound": 1, "not-staked": 1 });
  });

  it("keeps a peer's entry when an announcement naming another, unstaked operator is dropped", async () => {
    const { validator, table, oracle } = setup();
    expect((await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 1 }))).ok).toBe(true);
    oracle.answer = "inactive";
    expect(
      await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 2, operator: stranger.address }, stranger)),
    ).toMatchObject({ reason: "not-staked" });
    expect(table.get(AUTHOR)?.announcement.operator).toBe(operator.address);
  });
});

describe("announcement validator: stake look-ups and who is scored down", () => {
  it("takes a look-up for an operator never seen staked from the relay's budget; one seen staked is free", async () => {
    const { validator, oracle } = setup({ lookups: { capacity: 2, refillPerSecond: 1 } });
    const strangers = (seq: number) => wire({ seq, operator: stranger.address }, stranger);
    oracle.answer = "inactive";
    // Relayed, never staked: dropped unscored (the relay may not know), two look-ups spend RELAY's budget.
    for (const seq of [1, 2])
      expect(await validator.admit(AUTHOR, RELAY, await strangers(seq))).toMatchObject({
        reason: "not-staked",
        penalize: false,
      });
    expect(await validator.admit(AUTHOR, RELAY, await strangers(3))).toMatchObject({
      ok: false,
      reason: "lookup-limited",
      penalize: false,
      detail: `relayed by ${RELAY}`,
    });
    expect(oracle.calls).toBe(2);
    // Sent by its own peer, never staked: scored down (no honest node announces so).
    expect(await validator.admit(AUTHOR, AUTHOR, await strangers(4))).toMatchObject({
      reason: "not-staked",
      penalize: true,
    });
    // An operator seen staked (through the author's budget) is re-checked through RELAY's spent one.
    oracle.answer = "active";
    expect((await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 5 }))).ok).toBe(true);
    expect((await validator.admit(AUTHOR, RELAY, await wire({ seq: 6 }))).ok).toBe(true);
    expect(oracle.calls).toBe(5);
    // Its stake lapsing later is churn, not misbehaviour: not scored, even from its own peer.
    oracle.answer = "inactive";
    expect(await validator.admit(AUTHOR, AUTHOR, await wire({ seq: 7 }))).toMatchObject({
      reason: "not-staked",
      penalize: false,
    });
  });

  it("does not store an announcement whose peer was banned while it was being checked", async () => {
    const table = new PeerTable({ now: () => T0, ttlMs: 60_000 });
    const validator = new AnnouncementValidator({
      table,
      domain,
      selfPeerId: SELF,
      now: () => T0,
      oracle: {
        check: async () => {
          table.ban(AUTHOR, 1_000, "served bad bytes"); // during the chain read
          return "active";
        },
      },
    });
    expect(await validator.admit(AUTHOR, AUTHOR, await wire())).toEqual({
      ok: false,
      reason: "banned",
      penalize: false,
    });
    expect(table.get(AUTHOR)).toBeUndefined();
    expect(table.drops).toMatchObject({ banned: 1 });
  });
});
