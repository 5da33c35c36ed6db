// The Announcement a node gossips on `openlora/adapters/1`: which adapters it holds (by content hash, in which
// tier, and the chain listings of each that it serves, which payers pay), how busy it is, its price, where to
// reach it. This file is the wire format only: JSON, with the uint256 price as a
// decimal string, parsed field by field against fixed bounds so a hostile peer cannot make us allocate much.
// Signing and verification live in announcement-sig.ts.
import { getAddress, isAddress, type Address, type Hex } from "viem";
import { OpenLoraError } from "../engine/errors.ts";
import { isAdapterId } from "../engine/adapter/id.ts";

export const ANNOUNCE_TOPIC = "openlora/adapters/1";
// 2: each adapter names the listings it is served under (vouchers pay listings, not content hashes).
export const ANNOUNCEMENT_VERSION = 2;

export type Tier = "gpu" | "host" | "disk";
export const TIERS: readonly Tier[] = ["gpu", "host", "disk"];

/** An adapter a node holds, as its state reports it; the listings are attached once known (see ServedListings). */
export interface AdapterAvailability {
  /** "0x" + 64 lowercase hex: the content hash (sha256 of the canonical encoding), what peers fetch and verify. */
  id: Hex;
  tier: Tier;
  /** AdapterRegistry listing ids of this content that the node serves (payers pay one of them). */
  listings?: readonly Hex[];
}

/** An adapter as announced: its content hash, its tier and the listings served (possibly none). */
export interface AnnouncedAdapter {
  id: Hex;
  tier: Tier;
  /**
   * Listing ids, "0x" + 64 lowercase hex. The announcer's claim: whoever pays or fetches for a listing checks on
   * chain that the listing names this content hash.
   */
  listings: Hex[];
}

/** Everything the operator signs. */
export interface AnnouncementBody {
  v: number;
  /** The libp2p peer id (base58) that publishes it: must equal the gossip message's author. */
  peerId: string;
  /** The operator's address: the signer, staked in NodeRegistry. */
  operator: Address;
  /** Dialable addresses without /p2p/<id>. */
  multiaddrs: string[];
  /** The node's HTTP API base URL ("" when it has none). */
  api: string;
  adapters: AnnouncedAdapter[];
  /** Wei of OPEN per token. */
  pricePerToken: bigint;
  /** Requests waiting or running. */
  queueDepth: number;
  /** Adapter slots not pinned by a running request. */
  freeSlots: number;
  /** Milliseconds since the epoch when signed. */
  ts: number;
  /** Grows with every announcement of this peer (never reused, also across restarts). */
  seq: number;
}

export interface Announcement extends AnnouncementBody {
  /** EIP-712 signature of the body by `operator`, 65 bytes. */
  sig: Hex;
}

/** Bounds on what a peer may send; an announcement outside them is dropped unread. */
export interface AnnouncementLimits {
  /** Encoded size in bytes. */
  maxBytes: number;
  maxAdapters: number;
  /** Listing ids over all adapters. */
  maxListings: number;
  /** Listing ids of one adapter. */
  maxListingsPerAdapter: number;
  maxMultiaddrs: number;
  /** Longest multiaddr, api URL or peer id string. */
  maxStringLength: number;
}

// 512 adapters of ~100 JSON bytes each and 512 listing ids of 69 bytes each fit in 96 KiB with room for the rest.
// A node holding more announces its gpu and host adapters first and then as many disk ones as fit (see Announcer).
export const DEFAULT_ANNOUNCEMENT_LIMITS: AnnouncementLimits = {
  maxBytes: 96 * 1024,
  maxAdapters: 512,
  maxListings: 512,
  maxListingsPerAdapter: 8,
  maxMultiaddrs: 8,
  maxStringLength: 256,
};

export class AnnouncementFormatError extends OpenLoraError {
  override name = "AnnouncementFormatError";
  constructor(message: string) {
    super("announcement_format", message, { blame: "peer" });
  }
}

/** Well-formed JSON of another announcement version: not ours to judge (a newer node may speak it). */
export class AnnouncementVersionError extends AnnouncementFormatError {
  override name = "AnnouncementVersionError";
}

const SIGNATURE = /^0x[0-9a-f]{130}$/;
const UINT = /^(0|[1-9][0-9]{0,77})$/; // a uint256 in decimal is at most 78 digits
const MAX_UINT256 = (1n << 256n) - 1n;
const MAX_UINT32 = 2 ** 32 - 1;

export function encodeAnnouncement(a: Announcement): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ ...a, pricePerToken: a.pricePerToken.toString() }));
}

/** Parses and shape-checks wire bytes; throws AnnouncementFormatError naming the bad field. */
export function decodeAnnouncement(
  bytes: Uint8Array,
  limits: AnnouncementLimits = DEFAULT_ANNOUNCEMENT_LIMITS,
): Announcement {
  if (bytes.length > limits.maxBytes)
    throw new AnnouncementFormatError(`${bytes.length} bytes, over the ${limits.maxBytes} limit`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new AnnouncementFormatError(`not UTF-8 JSON: ${(error as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new AnnouncementFormatError("not a JSON object");
  const o = raw as Record<string, unknown>;
  const fail = (field: string, why: string): never => {
    throw new AnnouncementFormatError(`${field}: ${why}`);
  };
  const str = (field: string, max = limits.maxStringLength): string => {
    const value = o[field];
    if (typeof value !== "string" || value.length > max) fail(field, `must be a string of at most ${max} characters`);
    return value as string;
  };
  const uint = (field: string, max: number): number => {
    const value = o[field];
    if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) > max)
      fail(field, `must be an integer in 0..${max}`);
    return value as number;
  };

  const v = uint("v", 0xffff);
  // Checked before the rest: a later version may change the other fields.
  if (v !== ANNOUNCEMENT_VERSION)
    throw new AnnouncementVersionError(`version ${v}, this node speaks ${ANNOUNCEMENT_VERSION}`);
  const peerId = str("peerId");
  if (!/^[1-9A-HJ-NP-Za-km-z]+$/.test(peerId)) fail("peerId", "must be a base58 peer id");
  const operatorRaw = str("operator", 42);
  if (!isAddress(operatorRaw, { strict: false })) fail("operator", "must be an address");
  const api = str("api");
  if (!Array.isArray(o.multiaddrs) || o.multiaddrs.length > limits.maxMultiaddrs)
    fail("multiaddrs", `must be an array of at most ${limits.maxMultiaddrs}`);
  const multiaddrs = (o.multiaddrs as unknown[]).map((m, i) => {
    if (typeof m !== "string" || m.length === 0 || m.length > limits.maxStringLength || !m.startsWith("/"))
      fail(`multiaddrs[${i}]`, "must be a multiaddr string");
    return m as string;
  });
  if (!Array.isArray(o.adapters) || o.adapters.length > limits.maxAdapters)
    fail("adapters", `must be an array of at most ${limits.maxAdapters}`);
  const seen = new Set<string>();
  let listingCount = 0;
  const adapters = (o.adapters as unknown[]).map((entry, i): AnnouncedAdapter => {
    const e = entry as Record<string, unknown> | null;
    if (typeof e !== "object" || e === null || !isAdapterId(e.id))
      fail(`adapters[${i}].id`, "must be 0x and 64 lowercase hex digits");
    if (!TIERS.includes(e!.tier as Tier)) fail(`adapters[${i}].tier`, `must be one of ${TIERS.join(", ")}`);
    if (seen.has(e!.id as string)) fail(`adapters[${i}].id`, "is listed twice");
    seen.add(e!.id as string);
    const listings = e!.listings;
    if (!Array.isArray(listings) || listings.length > limits.maxListingsPerAdapter) {
      fail(`adapters[${i}].listings`, `must be an array of at most ${limits.maxListingsPerAdapter} listing ids`);
    }
    listingCount += (listings as unknown[]).length;
    if (listingCount > limits.maxListings) fail("adapters", `more than ${limits.maxListings} listing ids in all`);
    const own = new Set<string>();
    for (const [j, l] of (listings as unknown[]).entries()) {
      if (!isAdapterId(l)) fail(`adapters[${i}].listings[${j}]`, "must be 0x and 64 lowercase hex digits");
      if (own.has(l as string)) fail(`adapters[${i}].listings[${j}]`, "is listed twice");
      own.add(l as string);
    }
    return { id: e!.id as Hex, tier: e!.tier as Tier, listings: listings as Hex[] };
  });
  const priceRaw = str("pricePerToken", 78);
  if (!UINT.test(priceRaw) || BigInt(priceRaw) > MAX_UINT256) fail("pricePerToken", "must be a uint256 in decimal");
  const queueDepth = uint("queueDepth", MAX_UINT32);
  const freeSlots = uint("freeSlots", MAX_UINT32);
  const ts = uint("ts", Number.MAX_SAFE_INTEGER);
  const seq = uint("seq", Number.MAX_SAFE_INTEGER);
  const sig = str("sig", 132);
  if (!SIGNATURE.test(sig)) fail("sig", "must be 65 bytes of lowercase hex");
  return {
    v,
    peerId,
    operator: getAddress(operatorRaw),
    multiaddrs,
    api,
    adapters,
    pricePerToken: BigInt(priceRaw),
    queueDepth,
    freeSlots,
    ts,
    seq,
    sig: sig as Hex,
  };
}

/**
 * Fits a node's adapter list into the limits: gpu first, then host, then disk (what a router prefers anyway),
 * each group in id order so that unchanged state gives identical announcements; each adapter's listings sorted,
 * at most `limits.maxListingsPerAdapter` of them, and no more than `limits.maxListings` in all (the adapters
 * announced last keep fewer, or none: they are still announced, for fetches by content hash).
 */
export function selectAdapters(
  adapters: readonly AdapterAvailability[],
  max: number,
  limits: Pick<AnnouncementLimits, "maxListings" | "maxListingsPerAdapter"> = DEFAULT_ANNOUNCEMENT_LIMITS,
): AnnouncedAdapter[] {
  const rank = (t: Tier): number => TIERS.indexOf(t);
  let budget = limits.maxListings;
  return [...adapters]
    .sort((a, b) => rank(a.tier) - rank(b.tier) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, max)
    .map((a) => {
      const own = [...new Set((a.listings ?? []).map((l) => l.toLowerCase() as Hex))].sort();
      const listings = own.slice(0, Math.min(limits.maxListingsPerAdapter, budget));
      budget -= listings.length;
      return { id: a.id, tier: a.tier, listings };
    });
}
