// The node's usage ledger on LevelDB: every finished request, usage per adapter and hour, the latest voucher and
// settled amount per channel, settlement batches, and running totals. Each change is one atomic LevelDB batch,
// and writes run one at a time in this process, so the read-modify-write of totals never interleaves: after a
// crash at any point the ledger holds each change entirely or not at all.
import { mkdir } from "node:fs/promises";
import { Level } from "level";
import { LRUCache } from "lru-cache";
import type { Hex } from "viem";
import {
  decodeChannel,
  decodeCounters,
  decodePayerTotals,
  decodeRequest,
  decodeSettlement,
  decodeSettlementTotals,
  encode,
} from "./codec.ts";
import { addRequest, zeroCounters, zeroSettlementTotals } from "./counters.ts";
import { LedgerError } from "./errors.ts";
import {
  ADAPTER_TOTAL_PREFIX,
  adapterKey,
  channelKey,
  HOUR_MS,
  hourFromUsageKey,
  hourOf,
  PAYER_TOTAL_PREFIX,
  TOTAL_ALL,
  TOTAL_SETTLEMENT,
  usageKey,
  usageKeyEnd,
} from "./keys.ts";
import type {
  ChannelId,
  ChannelState,
  LedgerTotals,
  PayerTotals,
  RequestRecord,
  SettlementBatch,
  SettlementRecord,
  UnsettledChannel,
  UsageBucket,
  UsageCounters,
  UsageQuery,
  VoucherOutcome,
} from "./types.ts";
import {
  address,
  amount,
  bytes32,
  normalizeBatch,
  normalizeOutcome,
  normalizeRequest,
  text,
  txHash as checkTxHash,
  rawTransaction as checkRawTransaction,
} from "./validate.ts";

export interface LedgerOptions {
  /**
   * fsync each request's batch, so that it survives a power loss and not only a crash of the process (a killed
   * process loses nothing either way: LevelDB hands each batch to the OS before it resolves). Default false.
   * Settlement changes are always synced: they guard money that has left or is about to leave on chain.
   */
  syncRequests?: boolean;
}

function openSublevel(db: Level<string, string>, name: string) {
  return db.sublevel<string, string>(name, {});
}
type Sublevel = ReturnType<typeof openSublevel>;
type Op =
  { type: "put"; sublevel: Sublevel; key: string; value: string } | { type: "del"; sublevel: Sublevel; key: string };

const put = (sublevel: Sublevel, key: string, value: unknown): Op => ({
  type: "put",
  sublevel,
  key,
  value: encode(value),
});
const del = (sublevel: Sublevel, key: string): Op => ({ type: "del", sublevel, key });

/** Values a write reads back per sublevel (null: known absent); the most kept per sublevel. */
const READ_BACK_MAX = 10_000;

export class Ledger {
  readonly path: string;
  readonly #db: Level<string, string>;
  readonly #syncRequests: boolean;
  /** request id -> RequestRecord */
  readonly #requests: Sublevel;
  /** adapter!hour -> UsageBucket */
  readonly #usage: Sublevel;
  /** payer!node!listingId -> ChannelState */
  readonly #channels: Sublevel;
  /** batch id -> SettlementRecord */
  readonly #settlements: Sublevel;
  /** tx hash -> batch id */
  readonly #settlementsByTx: Sublevel;
  /** batch id -> "" while the batch is pending */
  readonly #pending: Sublevel;
  /** "all", "adapter!<hash|base>", "payer!<address>" -> counters; "settlement" -> SettlementTotals */
  readonly #totals: Sublevel;
  /**
   * The values writes read before changing them (usage buckets, totals, channels), as last written or read. This
   * process is the database's only writer (LevelDB's lock) and changes them only through #commit, so a cached
   * value is the one on disk: a request's record then costs one read (its id) instead of four to six.
   */
  readonly #readBack: Map<Sublevel, LRUCache<string, { value: string | null }>>;
  /** The tail of the chain of writes: each write starts when the previous one has finished. */
  #writes: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(path: string, db: Level<string, string>, options: LedgerOptions) {
    this.path = path;
    this.#db = db;
    this.#syncRequests = options.syncRequests ?? false;
    this.#requests = openSublevel(db, "requests");
    this.#usage = openSublevel(db, "usage");
    this.#channels = openSublevel(db, "channels");
    this.#settlements = openSublevel(db, "settlements");
    this.#settlementsByTx = openSublevel(db, "settlements-by-tx");
    this.#pending = openSublevel(db, "settlements-pending");
    this.#totals = openSublevel(db, "totals");
    this.#readBack = new Map(
      [this.#usage, this.#totals, this.#channels].map((sublevel) => [sublevel, new LRUCache({ max: READ_BACK_MAX })]),
    );
  }

  /** Open (creating it when missing) the ledger in folder `path`. One process at a time may hold it. */
  static async open(path: string, options: LedgerOptions = {}): Promise<Ledger> {
    await mkdir(path, { recursive: true });
    const db = new Level<string, string>(path);
    try {
      await db.open();
    } catch (error) {
      const reason = (error as { cause?: Error }).cause?.message ?? (error as Error).message;
      throw new LedgerError("ledger_open", `cannot open ${path}: ${reason} (is another node using this data folder?)`);
    }
    return new Ledger(path, db, options);
  }

  /** Waits for the writes already started, then closes the database. Later calls throw. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes.catch(() => undefined);
    await this.#db.close();
  }

  // ---- requests ----

  /**
   * Record one finished request: the request, its hour bucket, its channel (when paid) and the totals, in one
   * atomic batch. Idempotent by request id: returns false, changing nothing, when the id is already recorded
   * (a retry after a crash), true when it was recorded now.
   */
  async recordRequest(record: RequestRecord): Promise<boolean> {
    const r = normalizeRequest(record);
    return this.#write(async () => {
      if ((await this.#requests.get(r.id)) !== undefined) return false;
      const adapter = adapterKey(r.adapter);
      const hour = hourOf(r.timings.finishedAt);
      const bucketKey = usageKey(adapter, hour);
      const [bucket, adapterTotal, all] = await Promise.all([
        this.#read(this.#usage, bucketKey),
        this.#read(this.#totals, ADAPTER_TOTAL_PREFIX + adapter),
        this.#read(this.#totals, TOTAL_ALL),
      ]);
      const emptyBucket: UsageBucket = { ...zeroCounters(), adapter: r.adapter, hourStart: hour * HOUR_MS };
      const ops: Op[] = [
        put(this.#requests, r.id, r),
        put(this.#usage, bucketKey, addRequest(bucket === undefined ? emptyBucket : decodeBucket(bucket), r)),
        put(this.#totals, ADAPTER_TOTAL_PREFIX + adapter, addRequest(orZero(adapterTotal), r)),
        put(this.#totals, TOTAL_ALL, addRequest(orZero(all), r)),
      ];
      if (r.payer !== null) {
        const payerTotal = await this.#read(this.#totals, PAYER_TOTAL_PREFIX + r.payer);
        const before: PayerTotals =
          payerTotal === undefined ? { ...zeroCounters(), settled: 0n } : decodePayerTotals(payerTotal);
        ops.push(put(this.#totals, PAYER_TOTAL_PREFIX + r.payer, addRequest(before, r)));
      }
      if (r.voucher !== null) {
        const key = channelKey(r.voucher);
        const stored = await this.#read(this.#channels, key);
        ops.push(put(this.#channels, key, channelAfterRequest(stored === undefined ? null : decodeChannel(stored), r)));
      }
      await this.#commit(ops, this.#syncRequests);
      return true;
    });
  }

  async getRequest(id: string): Promise<RequestRecord | undefined> {
    this.#checkOpen();
    const stored = await this.#requests.get(text(id, "request id"));
    return stored === undefined ? undefined : decodeRequest(stored);
  }

  /** Every recorded request, in id order. Meant for audits and tests: it reads the whole sublevel. */
  async *requests(): AsyncGenerator<RequestRecord> {
    this.#checkOpen();
    for await (const value of this.#requests.values()) yield decodeRequest(value);
  }

  // ---- usage ----

  /** Hour buckets of one adapter (or all), in (adapter, hour) order, whose hour overlaps [from, to). */
  async usage(query: UsageQuery = {}): Promise<UsageBucket[]> {
    this.#checkOpen();
    const fromHour = query.from === undefined ? 0 : hourOf(checkTime(query.from, "from"));
    const toHour = query.to === undefined ? Number.POSITIVE_INFINITY : Math.ceil(checkTime(query.to, "to") / HOUR_MS);
    const inRange = (hour: number): boolean => hour >= fromHour && hour < toHour;
    const out: UsageBucket[] = [];
    if (query.adapter === undefined) {
      for await (const [key, value] of this.#usage.iterator())
        if (inRange(hourFromUsageKey(key))) out.push(decodeBucket(value));
      return out;
    }
    const adapter = adapterKey(query.adapter === null ? null : bytes32(query.adapter, "adapter"));
    const range = {
      gte: usageKey(adapter, fromHour),
      lt: Number.isFinite(toHour) ? usageKey(adapter, toHour) : usageKeyEnd(adapter),
    };
    for await (const value of this.#usage.values(range)) out.push(decodeBucket(value));
    return out;
  }

  // ---- channels ----

  async channel(id: ChannelId): Promise<ChannelState | undefined> {
    this.#checkOpen();
    const stored = await this.#channels.get(channelKey(normalizeChannelId(id)));
    return stored === undefined ? undefined : decodeChannel(stored);
  }

  async channels(): Promise<ChannelState[]> {
    this.#checkOpen();
    const out: ChannelState[] = [];
    for await (const value of this.#channels.values()) out.push(decodeChannel(value));
    return out;
  }

  /** latest voucher cumulative - settled cumulative of one channel; 0 for a channel the ledger does not know. */
  async unsettledAmount(id: ChannelId): Promise<bigint> {
    const c = await this.channel(id);
    return c === undefined ? 0n : unsettledOf(c);
  }

  /** Channels whose latest voucher is above what is settled, with the difference. */
  async unsettledChannels(): Promise<UnsettledChannel[]> {
    const out: UnsettledChannel[] = [];
    for (const c of await this.channels()) {
      const unsettled = unsettledOf(c);
      if (unsettled > 0n) out.push({ ...c, unsettled });
    }
    return out;
  }

  // ---- totals ----

  /** All totals, read from one snapshot of the database. */
  async totals(): Promise<LedgerTotals> {
    this.#checkOpen();
    const totals: LedgerTotals = { all: zeroCounters(), adapters: {}, payers: {}, settlement: zeroSettlementTotals() };
    for await (const [key, value] of this.#totals.iterator()) {
      if (key === TOTAL_ALL) totals.all = decodeCounters(value);
      else if (key === TOTAL_SETTLEMENT) totals.settlement = decodeSettlementTotals(value);
      else if (key.startsWith(ADAPTER_TOTAL_PREFIX))
        totals.adapters[key.slice(ADAPTER_TOTAL_PREFIX.length)] = decodeCounters(value);
      else if (key.startsWith(PAYER_TOTAL_PREFIX))
        totals.payers[key.slice(PAYER_TOTAL_PREFIX.length)] = decodePayerTotals(value);
    }
    return totals;
  }

  // ---- settlements ----

  /**
   * Record a batch as pending with the hash of the transaction that carries it, before it is sent: a restart then
   * finds it and asks the chain. `rawTransaction`, the signed transaction, lets a restart send it again if the
   * crash came before it left. Repeating the same call changes nothing. Every voucher must belong to a channel the
   * ledger knows, one voucher per channel.
   */
  async recordPendingSettlement(
    batch: SettlementBatch,
    txHash: Hex,
    rawTransaction: Hex | null = null,
  ): Promise<SettlementRecord> {
    const b = normalizeBatch(batch);
    const hash = checkTxHash(txHash);
    const raw = rawTransaction === null ? null : checkRawTransaction(rawTransaction);
    return this.#write(async () => {
      const existing = await this.#settlements.get(b.id);
      if (existing !== undefined) {
        const s = decodeSettlement(existing);
        if (s.txHash === hash && s.status === "pending") return s;
        throw new LedgerError("ledger_conflict", `batch ${b.id} is already recorded (${s.status}, tx ${s.txHash})`);
      }
      const other = await this.#batchIdOfTx(hash);
      if (other !== undefined) throw new LedgerError("ledger_conflict", `tx ${hash} already belongs to batch ${other}`);
      for (const v of b.vouchers) {
        if ((await this.#read(this.#channels, channelKey(v))) === undefined) {
          throw new LedgerError("ledger_invalid", `batch ${b.id}: no channel ${channelKey(v)} in the ledger`);
        }
      }
      const now = Date.now();
      const record: SettlementRecord = {
        batchId: b.id,
        txHash: hash,
        rawTransaction: raw,
        status: "pending",
        vouchers: b.vouchers,
        outcomes: null,
        gasUsed: null,
        error: null,
        createdAt: now,
        updatedAt: now,
      };
      const ops = [
        put(this.#settlements, b.id, record),
        put(this.#settlementsByTx, hash, b.id),
        put(this.#pending, b.id, ""),
      ];
      await this.#commit(ops, true);
      return record;
    });
  }

  /**
   * The chain mined the batch: `outcomes` (one per voucher, in order) say what the escrow paid or skipped. In one
   * batch: the settlement becomes confirmed, each paid channel's settled cumulative rises to its voucher's amount,
   * skipped channels remember why, payer and settlement totals grow. Idempotent: returns false, changing nothing,
   * when the batch is already confirmed. Throws for an unknown hash or a failed batch.
   */
  async confirmSettlement(txHash: Hex, outcomes: VoucherOutcome[], gasUsed: bigint): Promise<boolean> {
    const hash = checkTxHash(txHash);
    const checked = (Array.isArray(outcomes) ? outcomes : []).map((o, i) => normalizeOutcome(o, `outcome ${i}`));
    const gas = amount(gasUsed, "gasUsed");
    return this.#write(async () => {
      const s = await this.#settlementOfTx(hash);
      if (s.status === "confirmed") return false;
      if (s.status === "failed")
        throw new LedgerError("ledger_conflict", `batch ${s.batchId} (tx ${hash}) is marked failed`);
      if (checked.length !== s.vouchers.length) {
        throw new LedgerError(
          "ledger_invalid",
          `batch ${s.batchId}: ${checked.length} outcomes for ${s.vouchers.length} vouchers`,
        );
      }
      const payers = new Map<string, PayerTotals>();
      const stats = await this.#settlementTotals();
      const now = Date.now();
      const ops: Op[] = [];
      for (const [i, v] of s.vouchers.entries()) {
        const outcome = checked[i];
        const key = channelKey(v);
        const stored = await this.#read(this.#channels, key);
        if (stored === undefined) throw new LedgerError("ledger_invalid", `batch ${s.batchId}: channel ${key} is gone`);
        const channel = decodeChannel(stored);
        if (outcome.status === "skipped") {
          stats.vouchersSkipped += 1;
          const lastSkip = {
            batchId: s.batchId,
            reason: outcome.reason,
            cumulativeAmount: v.cumulativeAmount,
            at: now,
          };
          ops.push(put(this.#channels, key, { ...channel, lastSkip }));
          continue;
        }
        stats.vouchersPaid += 1;
        stats.amountPaid += outcome.amount;
        const settled = v.cumulativeAmount > channel.settled ? v.cumulativeAmount : channel.settled;
        ops.push(put(this.#channels, key, { ...channel, settled, lastSkip: null }));
        const payer = payers.get(v.payer) ?? (await this.#payerTotals(v.payer));
        payers.set(v.payer, { ...payer, settled: payer.settled + outcome.amount });
      }
      for (const [payer, t] of payers) ops.push(put(this.#totals, PAYER_TOTAL_PREFIX + payer, t));
      stats.batchesConfirmed += 1;
      stats.gasUsed += gas;
      const record: SettlementRecord = {
        ...s,
        status: "confirmed",
        outcomes: checked,
        gasUsed: gas,
        updatedAt: now,
      };
      ops.push(
        put(this.#settlements, s.batchId, record),
        del(this.#pending, s.batchId),
        put(this.#totals, TOTAL_SETTLEMENT, stats),
      );
      await this.#commit(ops, true);
      return true;
    });
  }

  /**
   * The batch's transaction reverted or will never be mined: its vouchers count as unsettled again. `gasUsed` is
   * what a reverted transaction burnt (null when unknown). Returns false when already failed; throws when confirmed.
   */
  async failSettlement(txHash: Hex, error: string, gasUsed: bigint | null): Promise<boolean> {
    const hash = checkTxHash(txHash);
    const reason = text(error, "failure reason", 1000);
    const gas = gasUsed === null ? null : amount(gasUsed, "gasUsed");
    return this.#write(async () => {
      const s = await this.#settlementOfTx(hash);
      if (s.status === "failed") return false;
      if (s.status === "confirmed")
        throw new LedgerError("ledger_conflict", `batch ${s.batchId} (tx ${hash}) is confirmed`);
      const stats = await this.#settlementTotals();
      stats.batchesFailed += 1;
      stats.gasUsed += gas ?? 0n;
      const record: SettlementRecord = { ...s, status: "failed", error: reason, gasUsed: gas, updatedAt: Date.now() };
      const ops = [
        put(this.#settlements, s.batchId, record),
        del(this.#pending, s.batchId),
        put(this.#totals, TOTAL_SETTLEMENT, stats),
      ];
      await this.#commit(ops, true);
      return true;
    });
  }

  /** Batches sent (or about to be) whose outcome is not yet recorded, oldest first: what a restart reconciles. */
  async pendingSettlements(): Promise<SettlementRecord[]> {
    this.#checkOpen();
    const ids = await this.#pending.keys().all();
    const stored = await this.#settlements.getMany(ids);
    const out = stored.flatMap((s) => (s === undefined ? [] : [decodeSettlement(s)]));
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Every settlement batch in batch id order (audits, tests, an operator's history view). */
  async *settlements(): AsyncGenerator<SettlementRecord> {
    this.#checkOpen();
    for await (const value of this.#settlements.values()) yield decodeSettlement(value);
  }

  async getSettlement(batchId: string): Promise<SettlementRecord | undefined> {
    this.#checkOpen();
    const stored = await this.#settlements.get(text(batchId, "batch id"));
    return stored === undefined ? undefined : decodeSettlement(stored);
  }

  async findSettlementByTx(txHash: Hex): Promise<SettlementRecord | undefined> {
    this.#checkOpen();
    const batchId = await this.#batchIdOfTx(checkTxHash(txHash));
    return batchId === undefined ? undefined : this.getSettlement(batchId);
  }

  // ---- internals ----

  async #settlementOfTx(hash: Hex): Promise<SettlementRecord> {
    const batchId = await this.#batchIdOfTx(hash);
    const stored = batchId === undefined ? undefined : await this.#settlements.get(batchId);
    if (stored === undefined) throw new LedgerError("ledger_invalid", `no settlement with tx ${hash}`);
    return decodeSettlement(stored);
  }

  async #batchIdOfTx(hash: Hex): Promise<string | undefined> {
    const stored = await this.#settlementsByTx.get(hash);
    return stored === undefined ? undefined : (JSON.parse(stored) as string);
  }

  async #settlementTotals() {
    const stored = await this.#read(this.#totals, TOTAL_SETTLEMENT);
    return stored === undefined ? zeroSettlementTotals() : decodeSettlementTotals(stored);
  }

  async #payerTotals(payer: string): Promise<PayerTotals> {
    const stored = await this.#read(this.#totals, PAYER_TOTAL_PREFIX + payer);
    return stored === undefined ? { ...zeroCounters(), settled: 0n } : decodePayerTotals(stored);
  }

  /** A value that a write is about to change (only inside #write, so no other write runs between read and commit). */
  async #read(sublevel: Sublevel, key: string): Promise<string | undefined> {
    const cache = this.#readBack.get(sublevel)!;
    const cached = cache.get(key);
    if (cached !== undefined) return cached.value ?? undefined;
    const value = await sublevel.get(key);
    cache.set(key, { value: value ?? null });
    return value;
  }

  /** Writes `ops` as one atomic batch, then brings the read-back values up to it. */
  async #commit(ops: Op[], sync: boolean): Promise<void> {
    try {
      await this.#db.batch(ops, { sync });
    } catch (error) {
      for (const cache of this.#readBack.values()) cache.clear(); // whatever happened on disk, read it again
      throw error;
    }
    for (const op of ops) this.#readBack.get(op.sublevel)?.set(op.key, { value: op.type === "put" ? op.value : null });
  }

  #checkOpen(): void {
    if (this.#closed) throw new LedgerError("ledger_closed", `${this.path} is closed`);
  }

  /** Runs `fn` after every write started before it (so read-modify-write sequences never interleave). */
  #write<T>(fn: () => Promise<T>): Promise<T> {
    this.#checkOpen();
    const run = this.#writes.then(fn);
    this.#writes = run.catch(() => undefined);
    return run;
  }
}

function orZero(stored: string | undefined): UsageCounters {
  return stored === undefined ? zeroCounters() : decodeCounters(stored);
}

/** A bucket stores its adapter (null: base model) and hour next to its counters. */
function decodeBucket(stored: string): UsageBucket {
  return decodeCounters(stored) as UsageBucket;
}

function channelAfterRequest(before: ChannelState | null, r: RequestRecord): ChannelState {
  const v = r.voucher!;
  if (before === null) {
    return {
      payer: v.payer,
      node: v.node,
      listingId: v.listingId,
      latest: v,
      consumed: r.cost,
      settled: 0n,
      requests: 1,
      lastSkip: null,
    };
  }
  return {
    ...before,
    // Vouchers on a channel only grow; a lower one arriving late (concurrent requests) never replaces a higher one.
    latest: v.cumulativeAmount > before.latest.cumulativeAmount ? v : before.latest,
    consumed: before.consumed + r.cost,
    requests: before.requests + 1,
  };
}

function unsettledOf(c: ChannelState): bigint {
  const d = c.latest.cumulativeAmount - c.settled;
  return d > 0n ? d : 0n;
}

function normalizeChannelId(id: ChannelId): ChannelId {
  return {
    payer: address(id.payer, "payer"),
    node: address(id.node, "node"),
    listingId: bytes32(id.listingId, "listingId"),
  };
}

function checkTime(ms: number, field: string): number {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
    throw new LedgerError("ledger_invalid", `usage query: ${field} must be a time in ms since 1970`);
  }
  return ms;
}
