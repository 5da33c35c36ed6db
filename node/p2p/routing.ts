// Routing: which peer should serve a request (or send an adapter). Among live announcements that hold the
// adapter (by content hash; for a paid request, also serving the listing paid), prefer tier gpu, then host,
// then disk (no load to wait for), then the shorter queue, then the lower price; on failure, the next one. Used by
// nodes (adapter fetch, forwarding) and by the client SDK.
import type { Hex } from "viem";
import type { Announcement, Tier } from "./announcement.ts";
import type { PeerEntry } from "./peer-table.ts";
import { OpenLoraError } from "../engine/errors.ts";

const TIER_ORDER: Record<Tier, number> = { gpu: 0, host: 1, disk: 2 };

export interface Candidate {
  peerId: string;
  announcement: Announcement;
  /** The adapter's tier at that peer; null for a base-model request. */
  tier: Tier | null;
}

/**
 * Ranks the peers able to serve `adapterId` (a content hash; null: the base model, which every node serves), best
 * first; with `listingId`, only those announcing that they serve that listing of it. Ties end in peer id order so
 * that the ranking is the same everywhere. With `strikes` (PeerTable.strikes), peers with fewer strikes come
 * first whatever they announce: a peer that announced what it then did not serve is believed less.
 */
export function rankCandidates(
  entries: Iterable<PeerEntry | Announcement>,
  adapterId: string | null,
  listingId?: string,
  strikes?: (peerId: string) => number,
): Candidate[] {
  const out: Candidate[] = [];
  const listing = listingId?.toLowerCase();
  for (const e of entries) {
    const announcement = "announcement" in e ? e.announcement : e;
    const held = adapterId === null ? null : announcement.adapters.find((a) => a.id === adapterId);
    if (held === undefined || (listing !== undefined && !held?.listings.includes(listing as Hex))) continue;
    const tier = held === null ? null : held.tier;
    out.push({ peerId: announcement.peerId, announcement, tier });
  }
  out.sort(compareCandidates);
  return strikes ? out.sort((a, b) => strikes(a.peerId) - strikes(b.peerId)) : out; // stable: rank within
}

export function compareCandidates(a: Candidate, b: Candidate): number {
  const tier = (a.tier === null ? 0 : TIER_ORDER[a.tier]) - (b.tier === null ? 0 : TIER_ORDER[b.tier]);
  if (tier !== 0) return tier;
  const queue = a.announcement.queueDepth - b.announcement.queueDepth;
  if (queue !== 0) return queue;
  const price = a.announcement.pricePerToken - b.announcement.pricePerToken;
  if (price !== 0n) return price < 0n ? -1 : 1;
  return a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0;
}

export interface Attempt {
  peerId: string;
  error: unknown;
}

/** Every candidate failed (or there was none). */
export class NoRouteError extends OpenLoraError {
  override name = "NoRouteError";
  readonly attempts: Attempt[];

  constructor(what: string, attempts: Attempt[]) {
    super(
      "no_route",
      attempts.length === 0
        ? `no live peer offers ${what}`
        : `every peer offering ${what} failed: ${attempts.map((a) => `${a.peerId}: ${(a.error as Error)?.message ?? String(a.error)}`).join("; ")}`,
    );
    this.attempts = attempts;
  }
}

/**
 * Tries `attempt` on each candidate in order until one succeeds. An abort of `signal` ends the search at once
 * (the caller gave up; trying the next peer would be wrong), and so does an error `isFatal` names. `onError` sees
 * each failure (to ban, to log).
 */
export async function withFailover<T>(
  candidates: readonly Candidate[],
  what: string,
  attempt: (candidate: Candidate) => Promise<T>,
  options: {
    signal?: AbortSignal;
    onError?: (candidate: Candidate, error: unknown) => void;
    isFatal?: (error: unknown) => boolean;
  } = {},
): Promise<T> {
  const attempts: Attempt[] = [];
  for (const candidate of candidates) {
    options.signal?.throwIfAborted();
    try {
      return await attempt(candidate);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (options.isFatal?.(error)) throw error;
      attempts.push({ peerId: candidate.peerId, error });
      options.onError?.(candidate, error);
    }
  }
  throw new NoRouteError(what, attempts);
}
