// The p2p parts that need no network: the announcement wire format and its bounds (listings included), the
// hand-written EIP-712 digest against viem's, signature recovery, the peer table's expiry and seq memory, rate
// buckets, routing order (by content hash, and by listing), and the adapter size bound.
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hashTypedData, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { encodeAdapter } from "../../node/engine/adapter/canonical.ts";
import { canonicalSizeLimit } from "../../node/p2p/adapter-fetcher.ts";
import {
  announcementTypedData,
  hashAnnouncement,
  recoverAnnouncementSigner,
  signAnnouncement,
} from "../../node/p2p/announcement-sig.ts";
import {
  AnnouncementFormatError,
  DEFAULT_ANNOUNCEMENT_LIMITS,
  decodeAnnouncement,
  encodeAnnouncement,
  selectAdapters,
  ANNOUNCEMENT_VERSION,
  type AnnouncedAdapter,
  type Announcement,
  type AnnouncementBody,
  type Tier,
} from "../../node/p2p/announcement.ts";
import { P2pHost } from "../../node/p2p/host.ts";
import { loadOrCreatePeerKey, PEER_KEY_FILE } from "../../node/p2p/peer-key.ts";
import { AnnouncementValidator } from "../../node/p2p/announce-validator.ts";
import { PeerTable } from "../../node/p2p/peer-table.ts";
import type { StakeOracle } from "../../node/p2p/stake-oracle.ts";
import { TokenBuckets } from "../../node/p2p/rate-limiter.ts";
import { NoRouteError, rankCandidates, withFailover } from "../../node/p2p/routing.ts";
import { stories } from "../helpers/stories.ts";

const domain = { chainId: 31337, verifyingContract: "0x5FbDB2315678afecb367f032d93F642f64180aa3" } as const;
const id = (n: number): Hex => `0x${n.toString(16).padStart(64, "0")}`;
const lid = (n: number): Hex => `0x${"e".repeat(56)}${n.toString(16).padStart(8, "0")}`; // a listing id
const entry = (n: number, tier: Tier, listings: Hex[] = []): AnnouncedAdapter => ({ id: id(n), tier, listings });
const account = privateKeyToAccount(generatePrivateKey());

function body(over: Partial<AnnouncementBody> = {}): AnnouncementBody {
  return {
    v: ANNOUNCEMENT_VERSION,
    peerId: "12D3KooWPywKQz1NSpnhVGQwzzvpCWuazMR5xhdZHAhW567oGUxW",
    operator: account.address,
    multiaddrs: ["/ip4/127.0.0.1/tcp/4001"],
    api: "http://127.0.0.1:8080",
    adapters: [
      { id: id(1), tier: "gpu", listings: [lid(1), lid(2)] },
      { id: id(2), tier: "disk", listings: [] },
    ],
    pricePerToken: 10n ** 12n,
    queueDepth: 3,
    freeSlots: 2,
    ts: 1_700_000_000_000,
    seq: 1_700_000_000_000,
    ...over,
  };
}

async function signed(over: Partial<AnnouncementBody> = {}): Promise<Announcement> {
  const b = body(over);
  return { ...b, sig: await signAnnouncement(account, b, domain) };
}

describe("announcement signatures", () => {
  it("hashes like viem's EIP-712 encoder, for empty, small and full adapter lists, with and without listings", () => {
    const tiers = ["gpu", "host", "disk"] as const;
    const many = Array.from({ length: 300 }, (_, i) =>
      entry(i, tiers[i % 3], i % 2 ? [lid(i)] : [lid(i), lid(i + 1), lid(i + 2)]),
    );
    for (const adapters of [[], body().adapters, many]) {
      const b = body({
        adapters,
        multiaddrs: adapters.length ? ["/ip4/1.2.3.4/tcp/1", "/dns4/x.example/tcp/2"] : [],
        pricePerToken: (1n << 255n) + 7n,
      });
      expect(hashAnnouncement(b, domain)).toBe(hashTypedData(announcementTypedData(b, domain)));
    }
  });

  it("recovers the operator, and nobody (or someone else) for a tampered body, another domain or a malleable signature", async () => {
    const a = await signed();
    expect(await recoverAnnouncementSigner(a, a.sig, domain)).toBe(account.address);
    expect(await recoverAnnouncementSigner({ ...a, queueDepth: 0 }, a.sig, domain)).not.toBe(account.address);
    // the listings served are signed too: adding, dropping or moving one voids the signature
    const [first, second] = a.adapters;
    for (const adapters of [
      [{ ...first, listings: [...first.listings, lid(9)] }, second],
      [{ ...first, listings: [lid(1)] }, second],
      [
        { ...first, listings: [] },
        { ...second, listings: [lid(1), lid(2)] },
      ],
    ]) {
      expect(await recoverAnnouncementSigner({ ...a, adapters }, a.sig, domain)).not.toBe(account.address);
    }
    expect(await recoverAnnouncementSigner(a, a.sig, { ...domain, chainId: 1 })).not.toBe(account.address);
    // The high-s twin of a valid signature is refused.
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const s = BigInt(`0x${a.sig.slice(66, 130)}`);
    const v = a.sig.slice(130) === "1b" ? "1c" : "1b";
    const twin = `${a.sig.slice(0, 66)}${(n - s).toString(16).padStart(64, "0")}${v}` as Hex;
    expect(await recoverAnnouncementSigner(a, twin, domain)).toBeNull();
    expect(await recoverAnnouncementSigner(a, "0x1234", domain)).toBeNull();
  });
});

describe("announcement wire format", () => {
  it("round-trips, price as a decimal string", async () => {
    const a = await signed();
    const bytes = encodeAnnouncement(a);
    expect(JSON.parse(new TextDecoder().decode(bytes)).pricePerToken).toBe("1000000000000");
    expect(decodeAnnouncement(bytes)).toEqual(a);
  });

  it("refuses what is out of shape or over its bounds, naming the field", async () => {
    const a = await signed();
    const bad = (o: Record<string, unknown>) =>
      new TextEncoder().encode(JSON.stringify({ ...a, pricePerToken: "1", ...o }));
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ pricePerToken: "-1" }, /pricePerToken/],
      [{ pricePerToken: (1n << 256n).toString() }, /pricePerToken/],
      [{ queueDepth: 1.5 }, /queueDepth/],
      [{ adapters: [{ id: id(1), tier: "tape", listings: [] }] }, /tier/],
      [{ adapters: [entry(1, "gpu"), entry(1, "disk")] }, /twice/],
      [{ adapters: [{ id: "0xABC", tier: "gpu", listings: [] }] }, /adapters\[0\]\.id/],
      [
        { adapters: Array.from({ length: DEFAULT_ANNOUNCEMENT_LIMITS.maxAdapters + 1 }, (_, i) => entry(i, "gpu")) },
        /adapters/,
      ],
      [{ adapters: [{ id: id(1), tier: "gpu" }] }, /adapters\[0\]\.listings/], // v1 shape: no listings
      [{ adapters: [entry(1, "gpu", [lid(1), lid(1)])] }, /adapters\[0\]\.listings\[1\]: is listed twice/],
      [{ adapters: [entry(1, "gpu", [id(1).toUpperCase() as Hex])] }, /adapters\[0\]\.listings\[0\]/],
      [
        {
          adapters: [
            entry(
              1,
              "gpu",
              Array.from({ length: 9 }, (_, i) => lid(i)),
            ),
          ],
        },
        /adapters\[0\]\.listings: .* at most 8/,
      ],
      [
        {
          adapters: Array.from({ length: 65 }, (_, i) =>
            entry(
              i,
              "gpu",
              Array.from({ length: 8 }, (_, j) => lid(i * 8 + j)),
            ),
          ),
        },
        /more than 512 listing ids/,
      ],
      [{ multiaddrs: Array.from({ length: 9 }, () => "/ip4/1.1.1.1/tcp/1") }, /multiaddrs/],
      [{ operator: "0x1234" }, /operator/],
      [{ peerId: "not/base58" }, /peerId/],
      [{ sig: "0x00" }, /sig/],
      [{ api: "x".repeat(300) }, /api/],
    ];
    for (const [o, field] of cases)
      expect(() => decodeAnnouncement(bad(o)), JSON.stringify(o).slice(0, 80)).toThrow(field);
    expect(() => decodeAnnouncement(new TextEncoder().encode("[1,2]"))).toThrow(AnnouncementFormatError);
    expect(() => decodeAnnouncement(Uint8Array.of(0xff, 0xfe))).toThrow(/UTF-8 JSON/);
    expect(() => decodeAnnouncement(new Uint8Array(DEFAULT_ANNOUNCEMENT_LIMITS.maxBytes + 1))).toThrow(/over the/);
  });

  it("fits a long adapter list gpu first, then host, then disk", () => {
    const list = [
      { id: id(5), tier: "disk" },
      { id: id(4), tier: "host" },
      { id: id(3), tier: "gpu" },
      { id: id(1), tier: "disk" },
    ] as const;
    expect(selectAdapters(list, 3).map((a) => a.tier)).toEqual(["gpu", "host", "disk"]);
    expect(selectAdapters(list, 3)[2]).toEqual({ id: id(1), tier: "disk", listings: [] });
  });

  it("fits the listings: sorted, lower-case, deduplicated, at most 8 per adapter and the budget in all", () => {
    const upper = lid(3).toUpperCase().replace("0X", "0x") as Hex;
    const [a] = selectAdapters([{ id: id(1), tier: "gpu", listings: [upper, lid(1), lid(3)] }], 1);
    expect(a.listings).toEqual([lid(1), lid(3)]);
    const nine = Array.from({ length: 9 }, (_, i) => lid(i));
    expect(selectAdapters([{ id: id(1), tier: "gpu", listings: nine }], 1)[0].listings).toEqual(nine.slice(0, 8));
    // the budget goes to gpu adapters first; the last ones are announced with fewer (or no) listings
    const held = [
      { id: id(1), tier: "disk" as const, listings: [lid(1), lid(2)] },
      { id: id(2), tier: "gpu" as const, listings: [lid(3), lid(4)] },
    ];
    const fitted = selectAdapters(held, 2, { maxListings: 3, maxListingsPerAdapter: 8 });
    expect(fitted).toEqual([entry(2, "gpu", [lid(3), lid(4)]), entry(1, "disk", [lid(1)])]);
  });

  it("keeps a node's 512 adapters and 512 listings within the byte bound", async () => {
    const adapters = Array.from({ length: 512 }, (_, i) => entry(i, "disk", [lid(i)]));
    const a = await signed({
      adapters,
      multiaddrs: Array(8).fill(`/ip4/255.255.255.255/tcp/65535`),
      api: "x".repeat(256),
    });
    expect(encodeAnnouncement(a).length).toBeLessThanOrEqual(DEFAULT_ANNOUNCEMENT_LIMITS.maxBytes);
    expect(decodeAnnouncement(encodeAnnouncement(a))).toEqual(a);
  });
});

describe("peer table", () => {
  it("expires entries after the TTL, remembers seq after expiry, and counts drops by reason", async () => {
    let now = 1_000;
    const table = new PeerTable({ ttlMs: 100, now: () => now });
    const removed: string[] = [];
    table.on("remove", (e) => removed.push(`${e.entry.peerId}:${e.reason}`));
    const a = await signed({ seq: 5 });
    table.upsert(a);
    expect(table.get(a.peerId)?.announcement.seq).toBe(5);
    expect(table.withAdapter(id(1))).toHaveLength(1);
    expect(table.withAdapter(id(9))).toHaveLength(0);
    now += 100;
    expect(table.get(a.peerId)).toBeUndefined(); // expired entries are invisible before the sweep
    expect(table.sweep()).toBe(1);
    expect(removed).toEqual([`${a.peerId}:expired`]);
    expect(table.lastSeq(a.peerId)).toBe(5);
    table.recordDrop({ reason: "stale", author: null, source: "x" });
    table.recordDrop({ reason: "stale", author: null, source: "x" });
    expect(table.drops.stale).toBe(2);
    expect(table.drops.replayed).toBe(0);
    table.upsert(a);
    table.ban(a.peerId, 50, "test");
    expect(table.isBanned(a.peerId)).toBe(true);
    expect(table.size).toBe(0);
    now += 50;
    expect(table.isBanned(a.peerId)).toBe(false);
  });

  it("rate buckets allow a burst, then the refill rate", () => {
    const buckets = new TokenBuckets({ capacity: 3, refillPerSecond: 2 });
    expect([1, 2, 3, 4].map(() => buckets.take("p", 0))).toEqual([true, true, true, false]);
    expect(buckets.take("p", 400)).toBe(false);
    expect(buckets.take("p", 500)).toBe(true);
    expect(buckets.take("q", 500)).toBe(true);
  });
});

describe("routing", () => {
  it("prefers gpu, then host, then disk, then the shorter queue, then the lower price", async () => {
    const mk = async (peerId: string, tier: "gpu" | "host" | "disk", queueDepth: number, price: bigint) =>
      signed({
        peerId,
        adapters: [entry(7, tier, peerId === "Qhost" ? [lid(2)] : [lid(1)])],
        queueDepth,
        pricePerToken: price,
      });
    const entries = [
      await mk("Qdisk", "disk", 0, 0n),
      await mk("Qhost", "host", 0, 5n),
      await mk("QgpuBusy", "gpu", 9, 0n),
      await mk("QgpuCheap", "gpu", 1, 1n),
      await mk("QgpuDear", "gpu", 1, 2n),
      await signed({ peerId: "Qother", adapters: [entry(8, "gpu", [lid(1)])] }),
    ];
    expect(rankCandidates(entries, id(7)).map((c) => c.peerId)).toEqual([
      "QgpuCheap",
      "QgpuDear",
      "QgpuBusy",
      "Qhost",
      "Qdisk",
    ]);
    expect(rankCandidates(entries, null)).toHaveLength(6); // every node serves the base model
    // a paid request: only the peers serving the listing paid (of that content), in the same order
    expect(rankCandidates(entries, id(7), lid(1)).map((c) => c.peerId)).toEqual([
      "QgpuCheap",
      "QgpuDear",
      "QgpuBusy",
      "Qdisk",
    ]);
    expect(rankCandidates(entries, id(7), lid(2).toUpperCase().replace("0X", "0x")).map((c) => c.peerId)).toEqual([
      "Qhost",
    ]);
    expect(rankCandidates(entries, id(8), lid(2))).toEqual([]);
    const table = new PeerTable();
    for (const e of entries) table.upsert(e);
    expect(table.withListing(lid(2)).map((e) => e.peerId)).toEqual(["Qhost"]);
    expect(table.withListing(lid(1))).toHaveLength(5);
  });

  it("fails over to the next candidate, stops at a fatal error, and says who failed", async () => {
    const cands = rankCandidates(
      [await signed({ peerId: "A" }), await signed({ peerId: "B" }), await signed({ peerId: "C" })],
      id(1),
    );
    const tried: string[] = [];
    const ok = await withFailover(cands, "x", async (c) => {
      tried.push(c.peerId);
      if (c.peerId !== "C") throw new Error(`${c.peerId} down`);
      return c.peerId;
    });
    expect([ok, tried]).toEqual(["C", ["A", "B", "C"]]);
    await expect(
      withFailover(cands, "x", async () => {
        throw new Error("down");
      }),
    ).rejects.toThrow(NoRouteError);
    await expect(withFailover([], "adapter y", async () => 1)).rejects.toThrow(/no live peer offers adapter y/);
    await expect(
      withFailover(
        cands,
        "x",
        async () => {
          throw new Error("fatal");
        },
        { isFatal: () => true },
      ),
    ).rejects.toThrow("fatal");
  });
});

describe("adapter size bound", () => {
  it("is at least the canonical size of a full adapter of that rank, and not far above it", async () => {
    const { weights } = await stories();
    const c = weights.config;
    const rank = 4;
    const layers = Array.from({ length: c.nLayers }, () => {
      const shape = (i: number, o: number) => ({ rank, a: new Float32Array(rank * i), b: new Float32Array(o * rank) });
      const kv = c.nKvHeads * c.headDim;
      return {
        q: shape(c.dim, c.dim),
        k: shape(c.dim, kv),
        v: shape(c.dim, kv),
        o: shape(c.dim, c.dim),
        gate: shape(c.dim, c.hiddenDim),
        up: shape(c.dim, c.hiddenDim),
        down: shape(c.hiddenDim, c.dim),
      };
    });
    const bytes = encodeAdapter({
      baseModel: "stories260K-with-a-long-base-model-name/and/path",
      rank,
      alpha: 8,
      useRslora: false,
      targets: ["q", "k", "v", "o", "gate", "up", "down"],
      layers,
    }).length;
    const limit = canonicalSizeLimit(c, rank);
    expect(limit).toBeGreaterThanOrEqual(bytes);
    expect(limit).toBeLessThan(bytes * 1.2);
  });
});

describe("peer identity", () => {
  it("persists in the data folder: the same peer id on every start, the key readable by the owner only", async () => {
    const dir = await mkdtemp(join(tmpdir(), "openlora-key-"));
    try {
      const first = await P2pHost.create({ dataDir: dir });
      const second = await P2pHost.create({ dataDir: dir });
      expect(second.peerId.toString()).toBe(first.peerId.toString());
      expect((await stat(join(dir, PEER_KEY_FILE))).mode & 0o777).toBe(0o600);
      await Promise.all([first.stop(), second.stop()]); // never started: stop is a no-op, but always call it
      await writeFile(join(dir, PEER_KEY_FILE), "garbage");
      await expect(loadOrCreatePeerKey(dir)).rejects.toThrow(/not a libp2p private key/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("announcement validator (without a network)", () => {
  const author = "12D3KooWPywKQz1NSpnhVGQwzzvpCWuazMR5xhdZHAhW567oGUxW";
  const self = "12D3KooWNSFqPWxk9m9QJFucu1pJ5Z4GKjaKXnUhJNKhyFHoaeJL";
  // One fixed clock for the validator and the announcements' ts: a slow machine cannot refill a rate bucket or
  // age an announcement between two checks (test/p2p/validator.test.ts moves the clock on purpose).
  const now = Date.now();
  const bytesOf = async (over: Partial<AnnouncementBody> = {}) =>
    encodeAnnouncement(await signed({ ts: now, seq: now, ...over }));
  function validator(check: StakeOracle["check"]) {
    const table = new PeerTable({ now: () => now });
    return {
      table,
      v: new AnnouncementValidator({ table, oracle: { check }, domain, selfPeerId: self, now: () => now }),
    };
  }

  it("accepts a good one, then names what is wrong with the rest", async () => {
    const { table, v } = validator(async () => "active");
    expect((await v.admit(author, author, await bytesOf())).ok).toBe(true);
    expect(table.get(author)).toBeDefined();
    const other = new TextEncoder().encode(JSON.stringify({ v: ANNOUNCEMENT_VERSION + 1, anything: "new" }));
    expect(await v.admit(author, author, other)).toMatchObject({ ok: false, reason: "version", penalize: false });
    // an old node's announcement (version 1: adapters without listings) is another version too, not malformed
    const old = new TextEncoder().encode(JSON.stringify({ ...(await signed()), v: 1, pricePerToken: "1" }));
    expect(await v.admit(author, author, old)).toMatchObject({ ok: false, reason: "version", penalize: false });
    expect(await v.admit(self, author, await bytesOf({ peerId: self }))).toMatchObject({ ok: false, reason: "self" });
    table.ban(author, 60_000, "test");
    expect(await v.admit(author, author, await bytesOf())).toMatchObject({ ok: false, reason: "banned" });
    expect(await v.admit(null, author, await bytesOf())).toMatchObject({
      ok: false,
      reason: "malformed",
      penalize: true,
    });
  });

  it("drops (without penalty) what the chain cannot confirm, and drops the entry of an operator gone inactive", async () => {
    let answer: "active" | "inactive" | Error = "active";
    const { table, v } = validator(async () => {
      if (answer instanceof Error) throw answer;
      return answer;
    });
    expect((await v.admit(author, author, await bytesOf({ seq: 1, ts: now }))).ok).toBe(true);
    answer = new Error("rpc down");
    expect(await v.admit(author, author, await bytesOf({ seq: 2, ts: now }))).toMatchObject({
      ok: false,
      reason: "chain-error",
      penalize: false,
    });
    expect(table.get(author)).toBeDefined(); // an RPC hiccup does not empty the table
    answer = "inactive";
    expect(await v.admit(author, author, await bytesOf({ seq: 3, ts: now }))).toMatchObject({
      ok: false,
      reason: "not-staked",
    });
    expect(table.get(author)).toBeUndefined();
    expect(table.drops).toMatchObject({ "chain-error": 1, "not-staked": 1 });
  });

  it("rejects the flood of its own author, but only ignores a relayed one", async () => {
    const { v } = validator(async () => "active");
    const relay = "12D3KooWAEtVkdL8AnexX9Fybua8JfBNinDkqW5t4LgHz7SwJncg";
    const verdicts = [];
    for (let i = 0; i < 12; i++)
      verdicts.push(await v.check(author, i < 11 ? author : relay, await bytesOf({ seq: 100 + i, ts: now })));
    expect(verdicts.slice(0, 10).every((x) => x.ok)).toBe(true);
    expect(verdicts[10]).toMatchObject({ ok: false, reason: "rate-limited", penalize: true });
    expect(verdicts[11]).toMatchObject({ ok: false, reason: "rate-limited", penalize: false });
  });
});
