// The announcement wire format field by field: what decodeAnnouncement takes at each bound and what it refuses
// one step past it, each refusal naming the field; the error classes a validator sorts by; selectAdapters'
// stable order. Plus the validator's own edges that the drop-reason suite does not reach: an equal seq, the exact
// byte bound, a body claiming our peer id from another author, a signature that recovers nobody.
import { describe, expect, it } from "vitest";
import type { Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { AnnouncementValidator } from "../../node/p2p/announce-validator.ts";
import { announcementDomain, signAnnouncement } from "../../node/p2p/announcement-sig.ts";
import {
  ANNOUNCEMENT_VERSION,
  AnnouncementFormatError,
  AnnouncementVersionError,
  DEFAULT_ANNOUNCEMENT_LIMITS,
  decodeAnnouncement,
  encodeAnnouncement,
  selectAdapters,
  type AnnouncementBody,
  type AnnouncementLimits,
} from "../../node/p2p/announcement.ts";
import { PeerTable } from "../../node/p2p/peer-table.ts";

const domain = { chainId: 31337, verifyingContract: "0x5FbDB2315678afecb367f032d93F642f64180aa3" } as const;
const PEER = "12D3KooWPywKQz1NSpnhVGQwzzvpCWuazMR5xhdZHAhW567oGUxW";
const SELF = "12D3KooWNSFqPWxk9m9QJFucu1pJ5Z4GKjaKXnUhJNKhyFHoaeJL";
const operator = privateKeyToAccount(generatePrivateKey());
const hex = (n: number): Hex => `0x${n.toString(16).padStart(64, "0")}`;
const SIG = `0x${"ab".repeat(65)}`;
const MAX_UINT256 = (1n << 256n) - 1n;

/** A wire object (as JSON would carry it) with `over` applied; `undefined` removes a field. */
function wireObject(over: Record<string, unknown> = {}): Record<string, unknown> {
  const o: Record<string, unknown> = {
    v: ANNOUNCEMENT_VERSION,
    peerId: PEER,
    operator: operator.address,
    multiaddrs: ["/ip4/127.0.0.1/tcp/4001"],
    api: "",
    adapters: [{ id: hex(1), tier: "gpu", listings: [hex(11)] }],
    pricePerToken: "5",
    queueDepth: 0,
    freeSlots: 1,
    ts: 1_800_000_000_000,
    seq: 1,
    sig: SIG,
    ...over,
  };
  for (const key of Object.keys(o)) if (o[key] === undefined) delete o[key];
  return o;
}

const bytesOf = (value: unknown) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));

function refusal(value: unknown, limits?: AnnouncementLimits): AnnouncementFormatError {
  try {
    decodeAnnouncement(bytesOf(value), limits);
  } catch (error) {
    expect(error).toBeInstanceOf(AnnouncementFormatError);
    return error as AnnouncementFormatError;
  }
  throw new Error(`accepted ${JSON.stringify(value).slice(0, 80)}`);
}

describe("decodeAnnouncement", () => {
  it("decodes a well-formed announcement, the price to a bigint and the operator checksummed", () => {
    const lower = operator.address.toLowerCase();
    const a = decodeAnnouncement(bytesOf(wireObject({ operator: lower, pricePerToken: MAX_UINT256.toString() })));
    expect(a).toMatchObject({
      v: ANNOUNCEMENT_VERSION,
      peerId: PEER,
      operator: operator.address,
      pricePerToken: MAX_UINT256,
      sig: SIG,
    });
    expect(a.adapters).toEqual([{ id: hex(1), tier: "gpu", listings: [hex(11)] }]);
    // A mixed-case address with a wrong checksum is still an address (not strict): it comes back checksummed.
    const wrongCase = `0x${[...lower.slice(2)].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join("")}`;
    expect(decodeAnnouncement(bytesOf(wireObject({ operator: wrongCase }))).operator).toBe(operator.address);
  });

  it("refuses what is not a UTF-8 JSON object", () => {
    for (const value of ["[1, 2]", "null", '"text"', "5", "true"])
      expect(refusal(value).message).toBe("not a JSON object");
    expect(refusal("{ nope").message).toMatch(/^not UTF-8 JSON: /);
    const latin = bytesOf(wireObject({ api: "caf_" }));
    latin[latin.indexOf("_".charCodeAt(0))] = 0xe9; // a lone Latin-1 byte: invalid UTF-8, never replaced
    expect(() => decodeAnnouncement(latin)).toThrow(/^not UTF-8 JSON: /);
  });

  it("takes exactly maxBytes, and refuses one byte more before parsing", () => {
    const bytes = bytesOf(wireObject());
    const limits = { ...DEFAULT_ANNOUNCEMENT_LIMITS, maxBytes: bytes.length };
    expect(decodeAnnouncement(bytes, limits).seq).toBe(1);
    expect(() => decodeAnnouncement(bytes, { ...limits, maxBytes: bytes.length - 1 })).toThrow(
      `${bytes.length} bytes, over the ${bytes.length - 1} limit`,
    );
  });

  it("sorts other versions out first, as AnnouncementVersionError", () => {
    const other = refusal({ v: ANNOUNCEMENT_VERSION + 1, anything: true });
    expect(other).toBeInstanceOf(AnnouncementVersionError);
    expect(other.message).toBe(`version ${ANNOUNCEMENT_VERSION + 1}, this node speaks ${ANNOUNCEMENT_VERSION}`);
    expect([other.name, other.code, other.blame]).toEqual(["AnnouncementVersionError", "announcement_format", "peer"]);
    const bad = refusal(wireObject({ queueDepth: -1 }));
    expect(bad).not.toBeInstanceOf(AnnouncementVersionError);
    expect([bad.name, bad.code, bad.blame]).toEqual(["AnnouncementFormatError", "announcement_format", "peer"]);
    expect(refusal(wireObject({ v: 65536 })).message).toBe("v: must be an integer in 0..65535");
  });

  it("bounds every integer: 0 .. max inclusive, safe integers only", () => {
    const max32 = 2 ** 32 - 1;
    for (const field of ["queueDepth", "freeSlots"]) {
      expect(decodeAnnouncement(bytesOf(wireObject({ [field]: max32 })))[field as "queueDepth"]).toBe(max32);
      for (const bad of [max32 + 1, -1, 1.5, "3", null]) {
        expect(refusal(wireObject({ [field]: bad })).message, `${field} ${bad}`).toBe(
          `${field}: must be an integer in 0..${max32}`,
        );
      }
    }
    expect(decodeAnnouncement(bytesOf(wireObject({ seq: Number.MAX_SAFE_INTEGER }))).seq).toBe(Number.MAX_SAFE_INTEGER);
    expect(refusal(wireObject({ ts: 2 ** 53 })).message).toBe(
      `ts: must be an integer in 0..${Number.MAX_SAFE_INTEGER}`,
    );
  });

  it("bounds every string, and checks peer id, operator, multiaddrs and signature shapes", () => {
    const n = DEFAULT_ANNOUNCEMENT_LIMITS.maxStringLength;
    const longest = `/dns4/${"a".repeat(n - 6)}`;
    expect(decodeAnnouncement(bytesOf(wireObject({ multiaddrs: [longest], api: "x".repeat(n) }))).multiaddrs).toEqual([
      longest,
    ]);
    const cases: [Record<string, unknown>, string][] = [
      [{ api: "x".repeat(n + 1) }, `api: must be a string of at most ${n} characters`],
      [{ api: 5 }, `api: must be a string of at most ${n} characters`],
      [{ peerId: "12D3Koo0OIl" }, "peerId: must be a base58 peer id"],
      [{ peerId: "" }, "peerId: must be a base58 peer id"],
      [{ operator: "0x1234" }, "operator: must be an address"],
      [{ operator: `${operator.address}0` }, "operator: must be a string of at most 42 characters"],
      [{ multiaddrs: "/ip4/1.2.3.4" }, "multiaddrs: must be an array of at most 8"],
      [{ multiaddrs: Array.from({ length: 9 }, () => "/ip4/1.2.3.4") }, "multiaddrs: must be an array of at most 8"],
      [{ multiaddrs: ["/ip4/1.2.3.4", ""] }, "multiaddrs[1]: must be a multiaddr string"],
      [{ multiaddrs: ["ip4/1.2.3.4"] }, "multiaddrs[0]: must be a multiaddr string"],
      [{ multiaddrs: [`${longest}a`] }, "multiaddrs[0]: must be a multiaddr string"],
      [{ multiaddrs: [7] }, "multiaddrs[0]: must be a multiaddr string"],
      [{ sig: SIG.toUpperCase().replace("0X", "0x") }, "sig: must be 65 bytes of lowercase hex"],
      [{ sig: SIG.slice(0, -2) }, "sig: must be 65 bytes of lowercase hex"],
      [{ sig: `${SIG}ab` }, "sig: must be a string of at most 132 characters"],
      [{ sig: `x${SIG.slice(1)}` }, "sig: must be 65 bytes of lowercase hex"],
      [{ sig: `${SIG.slice(0, -1)}g` }, "sig: must be 65 bytes of lowercase hex"],
      [{ sig: `0x${"ab".repeat(64)}zz` }, "sig: must be 65 bytes of lowercase hex"],
    ];
    for (const [over, message] of cases)
      expect(refusal(wireObject(over)).message, JSON.stringify(over).slice(0, 60)).toBe(message);
  });

  it("reads the price as a uint256 in plain decimal", () => {
    expect(decodeAnnouncement(bytesOf(wireObject({ pricePerToken: "0" }))).pricePerToken).toBe(0n);
    expect(decodeAnnouncement(bytesOf(wireObject({ pricePerToken: "9".repeat(77) }))).pricePerToken).toBe(
      10n ** 77n - 1n,
    );
    for (const bad of [(MAX_UINT256 + 1n).toString(), "9".repeat(78), "01", "-1", "1e3", " 1", "1 ", "0x10", ""]) {
      expect(refusal(wireObject({ pricePerToken: bad })).message, bad).toBe(
        "pricePerToken: must be a uint256 in decimal",
      );
    }
    expect(refusal(wireObject({ pricePerToken: 5 })).message).toBe(
      "pricePerToken: must be a string of at most 78 characters",
    );
    expect(refusal(wireObject({ pricePerToken: "1".repeat(79) })).message).toBe(
      "pricePerToken: must be a string of at most 78 characters",
    );
  });

  it("checks every adapter entry and its listings, within the bounds", () => {
    const limits: AnnouncementLimits = {
      ...DEFAULT_ANNOUNCEMENT_LIMITS,
      maxAdapters: 2,
      maxListings: 3,
      maxListingsPerAdapter: 2,
    };
    const entry = (id: number, tier = "gpu", listings: unknown[] = []) => ({ id: hex(id), tier, listings });
    expect(
      decodeAnnouncement(
        bytesOf(wireObject({ adapters: [entry(1, "gpu", [hex(7), hex(8)]), entry(2, "disk", [hex(9)])] })),
        limits,
      ).adapters,
    ).toHaveLength(2);
    const cases: [unknown, string][] = [
      [{}, "adapters: must be an array of at most 2"],
      [[entry(1), entry(2), entry(3)], "adapters: must be an array of at most 2"],
      [[null], "adapters[0].id: must be 0x and 64 lowercase hex digits"],
      [[5], "adapters[0].id: must be 0x and 64 lowercase hex digits"],
      [[{ ...entry(1), id: `0x${"AB".repeat(32)}` }], "adapters[0].id: must be 0x and 64 lowercase hex digits"],
      [[entry(1, "vram")], "adapters[0].tier: must be one of gpu, host, disk"],
      [[entry(1), entry(1, "host")], "adapters[1].id: is listed twice"],
      [[{ id: hex(1), tier: "gpu" }], "adapters[0].listings: must be an array of at most 2 listing ids"],
      [[entry(1, "gpu", [hex(7), hex(8), hex(9)])], "adapters[0].listings: must be an array of at most 2 listing ids"],
      [
        [entry(1, "gpu", [hex(7), hex(8)]), entry(2, "gpu", [hex(9), hex(10)])],
        "adapters: more than 3 listing ids in all",
      ],
      [[entry(1, "gpu", ["0x12"])], "adapters[0].listings[0]: must be 0x and 64 lowercase hex digits"],
      [[entry(1, "gpu", [hex(7), hex(7)])], "adapters[0].listings[1]: is listed twice"],
    ];
    for (const [adapters, message] of cases)
      expect(refusal(wireObject({ adapters }), limits).message, message).toBe(message);
  });
});

describe("selectAdapters", () => {
  it("orders gpu, host, disk, each by id, cuts at max, and sorts, dedupes and bounds the listings", () => {
    const a = (id: number, tier: "gpu" | "host" | "disk", listings: Hex[] = []) => ({ id: hex(id), tier, listings });
    const picked = selectAdapters([a(5, "disk"), a(3, "gpu"), a(9, "host"), a(1, "gpu"), a(2, "disk"), a(4, "gpu")], 5);
    expect(picked.map((x) => [x.tier, x.id])).toEqual([
      ["gpu", hex(1)],
      ["gpu", hex(3)],
      ["gpu", hex(4)],
      ["host", hex(9)],
      ["disk", hex(2)],
    ]);
    // Any input order gives the same announcement.
    expect(selectAdapters([a(4, "gpu"), a(1, "gpu"), a(3, "gpu")], 3)).toEqual(
      selectAdapters([a(3, "gpu"), a(4, "gpu"), a(1, "gpu")], 3),
    );
    const upper = (n: number) => hex(n).toUpperCase().replace("0X", "0x") as Hex;
    const limits = { maxListings: 3, maxListingsPerAdapter: 2 };
    const withListings = selectAdapters(
      [
        a(1, "gpu", [hex(0xf9), upper(0xf8), hex(0xf8), hex(0xf7)]),
        a(2, "gpu", [hex(6), hex(5)]),
        a(3, "host", [hex(4)]),
      ],
      3,
      limits,
    );
    expect(withListings.map((x) => x.listings)).toEqual([[hex(0xf7), hex(0xf8)], [hex(5)], []]);
  });
});

describe("announcement validator edges", () => {
  const T = 1_800_000_000_000;
  async function signedBytes(over: Partial<AnnouncementBody> = {}, sig?: Hex): Promise<Uint8Array> {
    const body: AnnouncementBody = {
      v: ANNOUNCEMENT_VERSION,
      peerId: PEER,
      operator: operator.address,
      multiaddrs: [],
      api: "",
      adapters: [],
      pricePerToken: 1n,
      queueDepth: 0,
      freeSlots: 0,
      ts: T,
      seq: 1,
      ...over,
    };
    return encodeAnnouncement({ ...body, sig: sig ?? (await signAnnouncement(operator, body, domain)) });
  }
  function validator(limits?: AnnouncementLimits) {
    const table = new PeerTable({ now: () => T });
    return {
      table,
      v: new AnnouncementValidator({
        table,
        domain,
        selfPeerId: SELF,
        now: () => T,
        limits,
        oracle: { check: async () => "peer-not-bound" as const },
      }),
    };
  }

  it("stores one of two identical announcements admitted at once; the other is a replay", async () => {
    const table = new PeerTable({ now: () => T });
    const v = new AnnouncementValidator({
      table,
      domain,
      selfPeerId: SELF,
      now: () => T,
      oracle: { check: async () => "active" },
    });
    const bytes = await signedBytes({ seq: 5 });
    const verdicts = await Promise.all([v.admit(PEER, PEER, bytes), v.admit(PEER, PEER, bytes)]);
    expect(verdicts.map((x) => x.ok).sort()).toEqual([false, true]);
    expect(verdicts.find((x) => !x.ok)).toMatchObject({ reason: "replayed", penalize: false, detail: "seq 5 <= 5" });
    expect(table.drops.replayed).toBe(1);
    expect(await v.check(PEER, PEER, bytes)).toMatchObject({ ok: false, reason: "replayed", detail: "seq 5 <= 5" });
  });

  it("reads an announcement of exactly maxBytes, refuses one byte more as oversized", async () => {
    const bytes = await signedBytes();
    expect(
      await validator({ ...DEFAULT_ANNOUNCEMENT_LIMITS, maxBytes: bytes.length }).v.check(PEER, PEER, bytes),
    ).toMatchObject({ reason: "peer-not-bound" });
    expect(
      await validator({ ...DEFAULT_ANNOUNCEMENT_LIMITS, maxBytes: bytes.length - 1 }).v.check(PEER, PEER, bytes),
    ).toMatchObject({ ok: false, reason: "oversized", penalize: true });
  });

  it("drops a body that names our peer id even when another peer authored it", async () => {
    expect(await validator().v.check(PEER, PEER, await signedBytes({ peerId: SELF }))).toMatchObject({
      ok: false,
      reason: "self",
      penalize: false,
    });
  });

  it("names who signed: nobody for a signature that recovers no key, and the operator an unbound peer claims", async () => {
    const { v } = validator();
    const highV = `0x${"11".repeat(64)}00` as Hex; // well-formed hex, v = 0: not a signature the contracts accept
    expect(await v.check(PEER, PEER, await signedBytes({}, highV))).toMatchObject({
      ok: false,
      reason: "bad-signature",
      detail: `signed by nobody, names ${operator.address}`,
    });
    expect(await v.check(PEER, PEER, await signedBytes())).toMatchObject({
      ok: false,
      reason: "peer-not-bound",
      detail: `${operator.address} is bound to another peer id`,
    });
  });

  it("signs for the announcement domain of the deployment", () => {
    expect(announcementDomain(domain)).toEqual({
      name: "OpenLoRA Announcement",
      version: "2",
      chainId: 31337n,
      verifyingContract: domain.verifyingContract,
    });
  });
});
