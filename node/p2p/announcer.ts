// Publishes this node's signed Announcement: every `intervalMs` (so peers keep it alive in their tables and see
// the queue), and soon after the adapter tiers change (the state's onChange: engine events, so routing follows
// loads and evictions), but never more often than `minIntervalMs` (receivers rate-limit each peer; bursts of
// churn are coalesced into one). One timer does both: the next publish is due at the earlier of the two.
import type { Address } from "viem";
import {
  ANNOUNCE_TOPIC,
  ANNOUNCEMENT_VERSION,
  DEFAULT_ANNOUNCEMENT_LIMITS,
  decodeAnnouncement,
  encodeAnnouncement,
  selectAdapters,
  type AdapterAvailability,
  type AnnouncedAdapter,
  type Announcement,
  type AnnouncementBody,
  type AnnouncementLimits,
} from "./announcement.ts";
import {
  signAnnouncement,
  signerAddress,
  type AnnouncementDomain,
  type AnnouncementSigner,
} from "./announcement-sig.ts";
import { Emitter } from "../engine/emitter.ts";
import type { P2pHost } from "./host.ts";
import type { PeerTable } from "./peer-table.ts";

/** What a node announces about itself, read fresh for every announcement. */
export interface NodeState {
  adapters(): AdapterAvailability[];
  load(): { queueDepth: number; freeSlots: number };
  /** Subscribes to changes of the adapters' tiers; returns the unsubscribe. Without it, only the period applies. */
  onChange?(listener: () => void): () => void;
}

export interface AnnouncerOptions {
  host: P2pHost;
  signer: AnnouncementSigner;
  domain: AnnouncementDomain;
  state: NodeState;
  /** Our own entry goes into this table too (marked local), so routing can pick this node. */
  table?: PeerTable;
  api?: string;
  pricePerToken?: bigint;
  /** Periodic announcement. Default 5 s. */
  intervalMs?: number;
  /** Least time between two announcements. Default 250 ms. */
  minIntervalMs?: number;
  limits?: AnnouncementLimits;
  now?: () => number;
}

export interface AnnouncerEvents {
  published: { announcement: Announcement; bytes: number; recipients: number };
  error: unknown;
}

export class Announcer extends Emitter<AnnouncerEvents> {
  readonly operator: Address;
  #o: AnnouncerOptions;
  #now: () => number;
  #limits: AnnouncementLimits;
  #api: string;
  #price: bigint;
  #seq = 0;
  #last: Announcement | null = null;
  #lastAt = Number.NEGATIVE_INFINITY;
  #fingerprint = "";
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Number.POSITIVE_INFINITY;
  #unsubscribe: (() => void) | null = null;
  #publishing: Promise<Announcement> | null = null;
  #again = false;
  #running = false;

  constructor(options: AnnouncerOptions) {
    super();
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#limits = options.limits ?? DEFAULT_ANNOUNCEMENT_LIMITS;
    this.#api = options.api ?? "";
    this.#price = options.pricePerToken ?? 0n;
    this.operator = signerAddress(options.signer);
  }

  /** The last announcement published. */
  get last(): Announcement | null {
    return this.#last;
  }

  /** Publishes at once, then keeps publishing. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
    // An event that leaves the announced adapters as they were (a host-tier eviction of a GPU-resident one)
    // publishes nothing.
    this.#unsubscribe =
      this.#o.state.onChange?.(() => {
        if (this.#adapterFingerprint() !== this.#fingerprint) this.changed();
      }) ?? null;
  }

  /** Stops publishing; waits for one in flight. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    await this.#publishing?.catch(() => {});
  }

  /** Something announced changed: publish as soon as the minimum interval allows. */
  changed(): void {
    if (!this.#running) return;
    this.#schedule(Math.max(0, this.#lastAt + (this.#o.minIntervalMs ?? 250) - this.#now()));
  }

  setPrice(pricePerToken: bigint): void {
    this.#price = pricePerToken;
    this.changed();
  }

  setApi(api: string): void {
    this.#api = api;
    this.changed();
  }

  /** Builds, signs and publishes one announcement now (also when not started: tests, forced refresh). */
  announceNow(): Promise<Announcement> {
    if (this.#publishing) {
      // One at a time (seq order is publish order); a change during a publish gets its own one after.
      this.#again = true;
      return this.#publishing;
    }
    const run = this.#publish().finally(() => {
      this.#publishing = null;
      if (this.#again) {
        this.#again = false;
        this.changed();
      }
    });
    this.#publishing = run;
    return run;
  }

  async #publish(): Promise<Announcement> {
    const now = this.#now();
    const adapters = selectAdapters(this.#o.state.adapters(), this.#limits.maxAdapters, this.#limits);
    const fingerprint = fingerprintOf(adapters);
    const load = this.#o.state.load();
    // seq starts from the clock so that it grows across restarts too (receivers remember the last one).
    this.#seq = Math.max(this.#seq + 1, now);
    const body: AnnouncementBody = {
      v: ANNOUNCEMENT_VERSION,
      peerId: this.#o.host.peerId.toString(),
      operator: this.operator,
      multiaddrs: this.#o.host.multiaddrs().slice(0, this.#limits.maxMultiaddrs),
      api: this.#api,
      adapters,
      pricePerToken: this.#price,
      queueDepth: load.queueDepth,
      freeSlots: load.freeSlots,
      ts: now,
      seq: this.#seq,
    };
    const announcement: Announcement = { ...body, sig: await signAnnouncement(this.#o.signer, body, this.#o.domain) };
    const bytes = encodeAnnouncement(announcement);
    // What receivers would refuse is refused here, loudly (an api URL or address over the length bound, say).
    decodeAnnouncement(bytes, this.#limits);
    const recipients = await this.#o.host.publish(ANNOUNCE_TOPIC, bytes);
    this.#last = announcement;
    this.#lastAt = now;
    this.#fingerprint = fingerprint;
    this.#o.table?.upsert(announcement, true);
    this.emit("published", { announcement, bytes: bytes.length, recipients });
    return announcement;
  }

  #schedule(delayMs: number): void {
    const at = this.#now() + delayMs;
    if (this.#timer && this.#timerAt <= at) return; // an earlier publish is already due
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = Number.POSITIVE_INFINITY;
      if (!this.#running) return;
      this.announceNow()
        .catch((error: unknown) => this.emit("error", error))
        .finally(() => {
          if (this.#running) this.#schedule(this.#o.intervalMs ?? 5_000);
        });
    }, delayMs);
    this.#timer.unref();
  }

  #adapterFingerprint(): string {
    return fingerprintOf(selectAdapters(this.#o.state.adapters(), this.#limits.maxAdapters, this.#limits));
  }
}

function fingerprintOf(adapters: readonly AnnouncedAdapter[]): string {
  return adapters.map((a) => `${a.id}:${a.tier}:${a.listings.join("+")}`).join(",");
}
