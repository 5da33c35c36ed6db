// Decides, for every announcement gossip brings, whether it enters the peer table and is forwarded. It runs as
// gossipsub's topic validator, i.e. before the message is relayed: what fails here goes no further.
//
// The checks run cheapest first, so that junk costs little: size, shape, version, author, ban, rate, freshness,
// seq, then the signature (an ECDSA recovery) and last the stake (a cached chain read). Fresh identities (a new
// key pair and operator key per announcement) would make every stake check a chain read: look-ups for an
// operator never seen staked here come out of a budget per relaying peer.
// Verdicts: "Reject" for what no honest relay would forward (bad shape, bad signature, someone else's peer id,
// flooding by the author itself): gossipsub scores the relaying peer down for it. "Ignore" for what depends on
// time or chain state, where an honest relay may see it differently: dropped, not scored.
import { TopicValidatorResult, type Message } from "@libp2p/gossipsub";
import { LRUCache } from "lru-cache";
import type { PeerId } from "@libp2p/interface";
import {
  AnnouncementFormatError,
  AnnouncementVersionError,
  DEFAULT_ANNOUNCEMENT_LIMITS,
  decodeAnnouncement,
  type Announcement,
  type AnnouncementLimits,
} from "./announcement.ts";
import { recoverAnnouncementSigner, type AnnouncementDomain } from "./announcement-sig.ts";
import type { DropReason, PeerTable } from "./peer-table.ts";
import { TokenBuckets, type RateLimit } from "./rate-limiter.ts";
import type { StakeOracle } from "./stake-oracle.ts";

export interface AnnouncementValidatorOptions {
  table: PeerTable;
  oracle: StakeOracle;
  domain: AnnouncementDomain;
  /** Our own peer id: an announcement claiming it is a replay. */
  selfPeerId: string;
  limits?: AnnouncementLimits;
  /** Oldest acceptable ts. Default 30 s. */
  maxAgeMs?: number;
  /** Clock skew tolerated for a ts in the future. Default 10 s. */
  maxFutureMs?: number;
  /** Per-author rate bound. Default bursts of 10, 4 per second after. */
  rate?: RateLimit;
  /**
   * Per-relay bound on stake look-ups for operators never seen staked here (re-checks of operators seen staked
   * are free). Default bursts of 32, 2 per second after.
   */
  lookups?: RateLimit;
  now?: () => number;
}

export type Verdict =
  { ok: true; announcement: Announcement } | { ok: false; reason: DropReason; penalize: boolean; detail?: string };

export class AnnouncementValidator {
  readonly table: PeerTable;
  #oracle: StakeOracle;
  #domain: AnnouncementDomain;
  #self: string;
  #limits: AnnouncementLimits;
  #maxAgeMs: number;
  #maxFutureMs: number;
  #rates: TokenBuckets;
  #lookups: TokenBuckets;
  /** Operators seen staked: their re-checks take no look-up budget (the least recently seen forgotten first). */
  #staked = new LRUCache<string, true>({ max: 10_000 });
  #now: () => number;

  constructor(options: AnnouncementValidatorOptions) {
    this.table = options.table;
    this.#oracle = options.oracle;
    this.#domain = options.domain;
    this.#self = options.selfPeerId;
    this.#limits = options.limits ?? DEFAULT_ANNOUNCEMENT_LIMITS;
    this.#maxAgeMs = options.maxAgeMs ?? 30_000;
    this.#maxFutureMs = options.maxFutureMs ?? 10_000;
    this.#rates = new TokenBuckets(options.rate ?? { capacity: 10, refillPerSecond: 4 });
    this.#lookups = new TokenBuckets(options.lookups ?? { capacity: 32, refillPerSecond: 2 });
    this.#now = options.now ?? Date.now;
  }

  /** The function to register as gossipsub's topic validator. */
  readonly topicValidator = async (source: PeerId, msg: Message): Promise<TopicValidatorResult> => {
    const author = msg.type === "signed" ? msg.from.toString() : null;
    const verdict = await this.admit(author, source.toString(), msg.data);
    if (verdict.ok) return TopicValidatorResult.Accept;
    return verdict.penalize ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore;
  };

  /** Checks one message and applies the outcome to the table (entry stored, or drop counted). */
  async admit(author: string | null, source: string, data: Uint8Array): Promise<Verdict> {
    const verdict = await this.check(author, source, data);
    if (!verdict.ok) {
      this.table.recordDrop({ reason: verdict.reason, author, source, detail: verdict.detail });
      return verdict;
    }
    const a = verdict.announcement;
    // The peer may have been banned while its announcement was being checked (the signature and stake awaits).
    if (this.table.isBanned(a.peerId)) {
      const drop: Verdict = { ok: false, reason: "banned", penalize: false };
      this.table.recordDrop({ reason: drop.reason, author, source });
      return drop;
    }
    // Two announcements of one peer may be checked concurrently: only a newer one may replace the entry.
    const last = this.table.lastSeq(a.peerId);
    if (last !== undefined && a.seq <= last) {
      const drop: Verdict = { ok: false, reason: "replayed", penalize: false, detail: `seq ${a.seq} <= ${last}` };
      this.table.recordDrop({ reason: drop.reason, author, source, detail: drop.detail });
      return drop;
    }
    this.table.upsert(a);
    return verdict;
  }

  /** The verdict alone, without touching the table (except to drop a peer whose stake is gone). */
  async check(author: string | null, source: string, data: Uint8Array): Promise<Verdict> {
    const drop = (reason: DropReason, penalize: boolean, detail?: string): Verdict => ({
      ok: false,
      reason,
      penalize,
      detail,
    });
    if (data.length > this.#limits.maxBytes) return drop("oversized", true, `${data.length} bytes`);
    if (author === null) return drop("malformed", true, "unsigned gossip message");
    let a: Announcement;
    try {
      a = decodeAnnouncement(data, this.#limits);
    } catch (error) {
      if (error instanceof AnnouncementVersionError) return drop("version", false, error.message);
      if (error instanceof AnnouncementFormatError) return drop("malformed", true, error.message);
      throw error;
    }
    if (author === this.#self || a.peerId === this.#self) return drop("self", false);
    // The gossip layer proved who authored the message (StrictSign); the body must name that same peer, or a
    // node could re-publish another's signed announcement as its own.
    if (a.peerId !== author) return drop("peer-mismatch", true, `names ${a.peerId}, sent by ${author}`);
    if (this.table.isBanned(author)) return drop("banned", false);
    const now = this.#now();
    if (!this.#rates.take(author, now)) return drop("rate-limited", source === author, `from ${author}`);
    if (a.ts < now - this.#maxAgeMs || a.ts > now + this.#maxFutureMs)
      return drop("stale", false, `ts ${a.ts}, now ${now}`);
    const last = this.table.lastSeq(author);
    if (last !== undefined && a.seq <= last) return drop("replayed", false, `seq ${a.seq} <= ${last}`);
    const signer = await recoverAnnouncementSigner(a, a.sig, this.#domain);
    if (signer === null || signer !== a.operator)
      return drop("bad-signature", true, `signed by ${signer ?? "nobody"}, names ${a.operator}`);
    // An operator seen staked before is re-checked freely; any other may be a made-up identity.
    const known = this.#staked.has(a.operator);
    if (!known && !this.#lookups.take(source, now)) return drop("lookup-limited", false, `relayed by ${source}`);
    let status;
    try {
      status = await this.#oracle.check(a.operator, a.peerId);
    } catch (error) {
      return drop("chain-error", false, (error as Error).message);
    }
    if (status === "inactive") {
      // The peer's own operator is no longer staked (signed by it, sent by the peer): it leaves the table now;
      // a stake that lapsed is churn. An operator never seen staked, sent by its own peer, is scored down: it
      // cost a chain read for an announcement no honest node makes.
      if (this.table.get(a.peerId)?.announcement.operator === a.operator) this.table.remove(a.peerId, "unstaked");
      return drop("not-staked", !known && source === author, a.operator);
    }
    this.#staked.set(a.operator, true);
    if (status === "peer-not-bound") return drop("peer-not-bound", false, `${a.operator} is bound to another peer id`);
    return { ok: true, announcement: a };
  }
}
