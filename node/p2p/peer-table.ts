// The peer table: the latest verified announcement of every live peer, expiring after a TTL, plus the record of
// what was dropped and why (drop counters by reason), strikes against peers that announced what they then did
// not serve, and the peers banned for misbehaving (bad adapter bytes, too many strikes).
// It stores; it does not verify (announce-validator.ts decides what gets in).
import type { Announcement } from "./announcement.ts";
import { LRUCache } from "lru-cache";
import { Emitter } from "../engine/emitter.ts";

/** Why an incoming announcement was dropped. */
export const DROP_REASONS = [
  "oversized", // over the byte bound
  "malformed", // not JSON of the announcement's shape, or unsigned gossip
  "version", // an announcement version we do not speak
  "self", // claims to be from us (a replay of our own)
  "peer-mismatch", // its peerId is not the gossip message's author
  "banned", // the author is banned (served bad adapter bytes)
  "rate-limited", // the author announces faster than the rate bound
  "stale", // ts too old or too far in the future
  "replayed", // seq not above the last one seen from that peer
  "bad-signature", // not signed by the operator it names
  "lookup-limited", // its relay is over its budget of stake look-ups for operators never seen staked
  "not-staked", // the operator has no active stake
  "peer-not-bound", // the operator's stake binds another peer id
  "chain-error", // the stake could not be checked
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Why an entry left the table. */
export type RemoveReason = "expired" | "unstaked" | "banned" | "evicted";

export interface PeerEntry {
  peerId: string;
  announcement: Announcement;
  /** Local clock, ms. */
  receivedAt: number;
  expiresAt: number;
  /** Our own announcement (a node routes to itself too). */
  local: boolean;
}

export interface DropEvent {
  reason: DropReason;
  /** The gossip author (signed by its libp2p key), null when unknown. */
  author: string | null;
  /** The neighbour that relayed it. */
  source: string;
  detail?: string;
}

export interface PeerTableEvents {
  upsert: { entry: PeerEntry; added: boolean };
  remove: { entry: PeerEntry; reason: RemoveReason };
  drop: DropEvent;
  ban: { peerId: string; until: number; reason: string };
  strike: { peerId: string; strikes: number; reason: string };
}

export interface PeerTableOptions {
  /** An entry not refreshed for this long is gone. Default 30 s (six missed 5 s announcements). */
  ttlMs?: number;
  /** Most entries held; when full, the one closest to expiry goes. Default 10 000. */
  maxPeers?: number;
  /** Peers whose last seq is remembered after their entry left (replay protection). Default 100 000. */
  maxSeqMemory?: number;
  /**
   * Strikes that ban a peer: failures it answers for without proof of malice (it announced an adapter, then
   * answered not-found or stalled). Default 3.
   */
  maxStrikes?: number;
  /** A peer's strikes are forgotten this long after its last one. Default 10 min. */
  strikeMemoryMs?: number;
  now?: () => number;
}

export class PeerTable extends Emitter<PeerTableEvents> {
  readonly ttlMs: number;
  /** Announcements dropped, by reason. */
  readonly drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  /** Announcements accepted (including refreshes of known peers). */
  accepted = 0;
  #maxPeers: number;
  #now: () => number;
  #entries = new Map<string, PeerEntry>();
  /** Replay protection outlives entries; the peers seen least recently are forgotten first. */
  #lastSeq: LRUCache<string, number>;
  #bans = new Map<string, number>();
  #strikes: LRUCache<string, { count: number; at: number }>;
  #maxStrikes: number;
  #strikeMemoryMs: number;

  constructor(options: PeerTableOptions = {}) {
    super();
    this.#strikes = new LRUCache({ max: options.maxSeqMemory ?? 100_000 });
    this.#maxStrikes = options.maxStrikes ?? 3;
    this.#strikeMemoryMs = options.strikeMemoryMs ?? 600_000;
    this.ttlMs = options.ttlMs ?? 30_000;
    this.#maxPeers = options.maxPeers ?? 10_000;
    this.#lastSeq = new LRUCache({ max: options.maxSeqMemory ?? 100_000 });
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Stores a verified announcement (replacing the peer's older one). */
  upsert(announcement: Announcement, local = false): PeerEntry {
    const now = this.#now();
    const peerId = announcement.peerId;
    const added = !this.#entries.has(peerId);
    if (added && this.#entries.size >= this.#maxPeers) this.#evictOne();
    const entry: PeerEntry = { peerId, announcement, receivedAt: now, expiresAt: now + this.ttlMs, local };
    this.#entries.set(peerId, entry);
    this.noteSeq(peerId, announcement.seq);
    if (!local) this.accepted++;
    this.emit("upsert", { entry, added });
    return entry;
  }

  /** The highest seq seen from a peer (kept after its entry expired). */
  lastSeq(peerId: string): number | undefined {
    return this.#lastSeq.get(peerId);
  }

  noteSeq(peerId: string, seq: number): void {
    const last = this.#lastSeq.get(peerId);
    if (last !== undefined && last >= seq) return;
    this.#lastSeq.set(peerId, seq);
  }

  /** A live entry, or undefined. */
  get(peerId: string): PeerEntry | undefined {
    const entry = this.#entries.get(peerId);
    return entry && entry.expiresAt > this.#now() ? entry : undefined;
  }

  /** Every live entry. */
  entries(): PeerEntry[] {
    const now = this.#now();
    return [...this.#entries.values()].filter((e) => e.expiresAt > now);
  }

  /** Live entries that announce the adapter (by content hash). */
  withAdapter(adapterId: string): PeerEntry[] {
    return this.entries().filter((e) => e.announcement.adapters.some((a) => a.id === adapterId));
  }

  /** Live entries that announce serving the listing (under whichever content hash they name for it). */
  withListing(listingId: string): PeerEntry[] {
    const id = listingId.toLowerCase();
    return this.entries().filter((e) => e.announcement.adapters.some((a) => a.listings.some((l) => l === id)));
  }

  remove(peerId: string, reason: RemoveReason): boolean {
    const entry = this.#entries.get(peerId);
    if (!entry) return false;
    this.#entries.delete(peerId);
    this.emit("remove", { entry, reason });
    return true;
  }

  /** Removes expired entries and lapsed bans; returns how many entries went. */
  sweep(): number {
    const now = this.#now();
    let removed = 0;
    for (const entry of [...this.#entries.values()]) {
      if (entry.expiresAt <= now && this.remove(entry.peerId, "expired")) removed++;
    }
    for (const [peerId, until] of this.#bans) if (until <= now) this.#bans.delete(peerId);
    return removed;
  }

  recordDrop(drop: DropEvent): void {
    this.drops[drop.reason]++;
    this.emit("drop", drop);
  }

  /** Bans a peer for `ms`: its entry goes, its announcements are dropped as "banned" until then. */
  ban(peerId: string, ms: number, reason: string): void {
    const until = this.#now() + ms;
    this.#bans.set(peerId, Math.max(until, this.#bans.get(peerId) ?? 0));
    this.remove(peerId, "banned");
    this.emit("ban", { peerId, until, reason });
  }

  /**
   * Counts a strike against a peer (see PeerTableOptions.maxStrikes); at the last one it is banned for `banMs`.
   * Returns the peer's strikes now.
   */
  strike(peerId: string, banMs: number, reason: string): number {
    const now = this.#now();
    const count = this.strikes(peerId) + 1;
    this.#strikes.set(peerId, { count, at: now });
    this.emit("strike", { peerId, strikes: count, reason });
    if (count >= this.#maxStrikes) {
      this.#strikes.delete(peerId);
      this.ban(peerId, banMs, `${count} strikes, the last: ${reason}`);
    }
    return count;
  }

  /** A peer's strikes not yet forgotten (routing tries peers with fewer first). */
  strikes(peerId: string): number {
    const record = this.#strikes.get(peerId);
    return record && this.#now() - record.at < this.#strikeMemoryMs ? record.count : 0;
  }

  isBanned(peerId: string): boolean {
    const until = this.#bans.get(peerId);
    return until !== undefined && until > this.#now();
  }

  #evictOne(): void {
    let victim: PeerEntry | undefined;
    for (const e of this.#entries.values()) if (!e.local && (!victim || e.expiresAt < victim.expiresAt)) victim = e;
    if (victim) this.remove(victim.peerId, "evicted");
  }
}
