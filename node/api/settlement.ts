// The settlement job: turns the ledger's unsettled channels into InferenceEscrow.settle batches, safely across
// crashes. Each batch's transaction is signed first, recorded in the ledger as pending with its hash and signed
// bytes, and only then sent; on every pass (and so on restart) pending batches are reconciled with what the chain
// says: mined (each voucher's paid amount or skip reason goes into the ledger), reverted or dropped (the vouchers
// are open again), or still waiting (the same signed bytes are sent again after a while, which also covers a crash
// between recording and sending). One batch is in flight at a time, so a voucher is never in two live batches.
// The chain side is behind EscrowSettler, so this file knows the ledger and nothing of viem's clients.
import type { Address, Hex } from "viem";
import type { Ledger, LedgerVoucher, SettlementRecord, UnsettledChannel, VoucherOutcome } from "../ledger/index.ts";

/** A settle transaction signed but not sent. */
export interface PreparedSettlement {
  txHash: Hex;
  rawTransaction: Hex;
}

/** What the chain knows of a settle transaction. */
export type SettlementTxState =
  /** Mined and successful: one outcome per voucher, in batch order (from VoucherSettled/VoucherSkipped). */
  | { state: "mined"; outcomes: VoucherOutcome[]; gasUsed: bigint }
  /** Mined and reverted: nothing was paid. */
  | { state: "reverted"; gasUsed: bigint; reason: string }
  /** Not mined, and it still may be (in the mempool, or never sent). */
  | { state: "waiting" }
  /** Can never be mined (e.g. its nonce was used by another transaction). */
  | { state: "dropped"; reason: string };

/** The escrow, as the job needs it. The chain implementation signs with the operator's key. */
export interface EscrowSettler {
  /** Sign InferenceEscrow.settle(vouchers, their signatures) without sending it. */
  prepare(vouchers: readonly LedgerVoucher[]): Promise<PreparedSettlement>;
  /** Send signed bytes (again): sending a transaction the chain already has must not fail. */
  send(rawTransaction: Hex): Promise<void>;
  status(txHash: Hex): Promise<SettlementTxState>;
}

export interface SettlementPolicy {
  /** Unsettled money waits at most this long (from when the job first saw it) before a batch goes out. */
  intervalMs: number;
  /** ...or a batch goes out as soon as the unsettled total reaches this (wei). */
  thresholdWei: bigint;
  /** Vouchers per transaction: the escrow's gas grows with each (about 42k gas per voucher). */
  maxBatch: number;
  /** How often the job wakes to check receipts and triggers. */
  pollMs: number;
  /** A pending batch still not mined after this long is sent again (the same signed bytes). */
  resendAfterMs: number;
  /** A voucher the escrow skipped is tried again when its channel has a higher one, or after this long. */
  skipRetryMs: number;
}

export const DEFAULT_SETTLEMENT_POLICY: SettlementPolicy = {
  intervalMs: 10 * 60_000,
  thresholdWei: 10n ** 18n,
  maxBatch: 50,
  pollMs: 2_000,
  resendAfterMs: 60_000,
  skipRetryMs: 60 * 60_000,
};

/** Structured log lines (the API's jsonLogger fits). */
export interface SettlementLog {
  log(level: "info" | "warn" | "error", event: string, fields?: Record<string, unknown>): void;
}

export interface SettlementJobOptions {
  ledger: Ledger;
  settler: EscrowSettler;
  /** This node's operator address: only its channels are settled. */
  node: Address;
  policy?: Partial<SettlementPolicy>;
  log?: SettlementLog;
  /** Called once per batch that reached an end (confirmed or failed), e.g. for the gas histogram. */
  onBatchDone?: (batch: SettlementRecord) => void;
  /** The clock (ms); tests drive it. */
  now?: () => number;
}

/** What one pass did: nothing to do, waited on a pending batch, or sent a new one. */
export type SettlementPass = "idle" | "waiting" | "sent";

export class SettlementJob {
  readonly policy: SettlementPolicy;
  readonly #ledger: Ledger;
  readonly #settler: EscrowSettler;
  readonly #node: string;
  readonly #log: SettlementLog;
  readonly #onBatchDone: (batch: SettlementRecord) => void;
  readonly #now: () => number;
  /** When each pending transaction was last sent by this process; absent after a restart, so it is sent again. */
  readonly #sentAt = new Map<Hex, number>();
  /** When the job first saw unsettled money that no batch has taken yet; null when there is none. */
  #unsettledSince: number | null = null;
  /** A round goes on (batch after batch) until nothing eligible is left, once interval or threshold starts it. */
  #inRound = false;
  #forced = false;
  #pass: Promise<SettlementPass> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stopped = true;

  constructor(options: SettlementJobOptions) {
    this.policy = { ...DEFAULT_SETTLEMENT_POLICY, ...options.policy };
    if (!Number.isSafeInteger(this.policy.maxBatch) || this.policy.maxBatch < 1) {
      throw new RangeError(`settlement maxBatch must be a positive integer, got ${this.policy.maxBatch}`);
    }
    this.#ledger = options.ledger;
    this.#settler = options.settler;
    this.#node = options.node.toLowerCase();
    this.#log = options.log ?? { log() {} };
    this.#onBatchDone = options.onBatchDone ?? (() => {});
    this.#now = options.now ?? Date.now;
  }

  /** Reconciles what a previous run left pending, then wakes every pollMs. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#safePass();
    this.#schedule();
  }

  /** Stops waking and waits for a pass in progress. A batch in flight stays pending: the next start reconciles it. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#pass?.catch(() => undefined);
  }

  /** Start a round now, whatever the interval and threshold say (e.g. at shutdown), and run one pass. */
  settleNow(): Promise<SettlementPass> {
    this.#forced = true;
    return this.pass();
  }

  /** One pass: reconcile pending batches, then send a batch when one is due. Concurrent calls share one pass. */
  pass(): Promise<SettlementPass> {
    this.#pass ??= this.#runPass().finally(() => {
      this.#pass = null;
    });
    return this.#pass;
  }

  async #runPass(): Promise<SettlementPass> {
    const now = this.#now();
    let waiting = false;
    for (const batch of await this.#ledger.pendingSettlements()) {
      if (!(await this.#reconcile(batch, now))) waiting = true;
    }
    if (waiting) return "waiting";
    const eligible = await this.#eligible(now);
    if (eligible.length === 0) {
      this.#unsettledSince = null;
      this.#inRound = false;
      this.#forced = false;
      return "idle";
    }
    this.#unsettledSince ??= now;
    if (!this.#inRound) {
      const total = eligible.reduce((sum, c) => sum + c.unsettled, 0n);
      const due = now - this.#unsettledSince >= this.policy.intervalMs || total >= this.policy.thresholdWei;
      if (!due && !this.#forced) return "idle";
      this.#inRound = true;
      this.#forced = false;
    }
    await this.#send(eligible.slice(0, this.policy.maxBatch), now);
    return "sent";
  }

  /** Channels of this node with something unsettled, largest first, leaving out skipped vouchers not yet due. */
  async #eligible(now: number): Promise<UnsettledChannel[]> {
    const channels = (await this.#ledger.unsettledChannels()).filter(
      (c) =>
        c.node === this.#node &&
        (c.lastSkip === null ||
          c.latest.cumulativeAmount > c.lastSkip.cumulativeAmount ||
          now - c.lastSkip.at >= this.policy.skipRetryMs),
    );
    return channels.sort((a, b) => (a.unsettled === b.unsettled ? 0 : a.unsettled > b.unsettled ? -1 : 1));
  }

  async #send(channels: UnsettledChannel[], now: number): Promise<void> {
    const vouchers = channels.map((c) => c.latest);
    const prepared = await this.#settler.prepare(vouchers);
    const batchId = `${new Date(now).toISOString()}-${prepared.txHash.slice(2, 10)}`;
    // Recorded before it leaves: a crash from here on finds the batch pending, with the bytes to send again.
    await this.#ledger.recordPendingSettlement({ id: batchId, vouchers }, prepared.txHash, prepared.rawTransaction);
    this.#sentAt.set(prepared.txHash, now);
    const amount = channels.reduce((sum, c) => sum + c.unsettled, 0n);
    this.#log.log("info", "settlement_sent", { batchId, txHash: prepared.txHash, vouchers: vouchers.length, amount });
    await this.#trySend(batchId, prepared.txHash, prepared.rawTransaction);
  }

  async #trySend(batchId: string, txHash: Hex, raw: Hex): Promise<void> {
    try {
      await this.#settler.send(raw);
    } catch (error) {
      // Still pending in the ledger: the next passes ask the chain, and send again after resendAfterMs.
      this.#log.log("warn", "settlement_send_failed", { batchId, txHash, error: (error as Error).message });
    }
  }

  /** Brings one pending batch up to date with the chain; true when it reached an end. */
  async #reconcile(batch: SettlementRecord, now: number): Promise<boolean> {
    const tx = await this.#settler.status(batch.txHash);
    const fields = { batchId: batch.batchId, txHash: batch.txHash, vouchers: batch.vouchers.length };
    if (tx.state === "waiting") {
      const sentAt = this.#sentAt.get(batch.txHash);
      if (batch.rawTransaction !== null && (sentAt === undefined || now - sentAt >= this.policy.resendAfterMs)) {
        this.#sentAt.set(batch.txHash, now);
        this.#log.log("info", "settlement_resent", fields);
        await this.#trySend(batch.batchId, batch.txHash, batch.rawTransaction);
      }
      return false;
    }
    if (tx.state === "mined") {
      await this.#ledger.confirmSettlement(batch.txHash, tx.outcomes, tx.gasUsed);
      const paid = tx.outcomes.reduce((sum, o) => sum + (o.status === "paid" ? o.amount : 0n), 0n);
      const skipped = tx.outcomes.flatMap((o, i) =>
        o.status === "skipped"
          ? [{ payer: batch.vouchers[i].payer, listingId: batch.vouchers[i].listingId, reason: o.reason }]
          : [],
      );
      this.#log.log("info", "settlement_confirmed", { ...fields, paid, gasUsed: tx.gasUsed, skipped });
    } else if (tx.state === "reverted") {
      await this.#ledger.failSettlement(batch.txHash, `reverted: ${tx.reason}`, tx.gasUsed);
      this.#log.log("warn", "settlement_reverted", { ...fields, reason: tx.reason, gasUsed: tx.gasUsed });
    } else {
      await this.#ledger.failSettlement(batch.txHash, `dropped: ${tx.reason}`, null);
      this.#log.log("warn", "settlement_dropped", { ...fields, reason: tx.reason });
    }
    this.#sentAt.delete(batch.txHash);
    const done = await this.#ledger.getSettlement(batch.batchId);
    if (done) this.#onBatchDone(done);
    return true;
  }

  async #safePass(): Promise<void> {
    try {
      await this.pass();
    } catch (error) {
      // The chain or the disk failed this pass; the state is in the ledger, so the next pass starts over from it.
      this.#log.log("error", "settlement_error", { error: (error as Error).message });
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.#safePass().then(() => this.#schedule());
    }, this.policy.pollMs);
    this.#timer.unref();
  }
}
