// The settlement job against a real ledger (LevelDB on disk) and a FAKE escrow: an in-memory stand-in that pays
// each voucher's growth, skips what does not grow or is not covered, and can revert, drop or lose a transaction.
// The chain is not the point here (the job's triggers, batching, pending-before-send and reconciliation are);
// the escrow's real behaviour is held by the contract suites, and the paid flow on Hardhat by the API's tests.
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hex } from "viem";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  SettlementJob,
  type EscrowSettler,
  type PreparedSettlement,
  type SettlementPolicy,
  type SettlementTxState,
} from "../../node/api/settlement.ts";
import { Ledger, type LedgerVoucher, type VoucherOutcome } from "../../node/ledger/index.ts";
import { LISTINGS, NODE, paidRequest, PAYERS, T0 } from "../ledger/records.ts";

interface FakeTx {
  vouchers: LedgerVoucher[];
  raw: Hex;
  sends: number;
  state: SettlementTxState;
}

class FakeEscrow implements EscrowSettler {
  readonly txs = new Map<Hex, FakeTx>();
  /** Cumulative amount paid per channel, and per payer what is left to draw (absent: unlimited). */
  readonly settled = new Map<string, bigint>();
  readonly funds = new Map<string, bigint>();
  paid = 0n;
  mineOnSend = true;
  failSends = 0;
  revertNext = false;
  onSend: (txHash: Hex) => Promise<void> = async () => {};
  #nonce = 0;

  async prepare(vouchers: readonly LedgerVoucher[]): Promise<PreparedSettlement> {
    const body = JSON.stringify({ nonce: this.#nonce++, vouchers }, (_, v) => (typeof v === "bigint" ? `${v}` : v));
    const raw = `0x${Buffer.from(body).toString("hex")}` as Hex;
    const txHash = `0x${createHash("sha256").update(raw).digest("hex")}` as Hex;
    this.txs.set(txHash, { vouchers: [...vouchers], raw, sends: 0, state: { state: "waiting" } });
    return { txHash, rawTransaction: raw };
  }

  async send(raw: Hex): Promise<void> {
    const [hash, tx] = [...this.txs].find(([, t]) => t.raw === raw)!;
    await this.onSend(hash);
    if (this.failSends > 0) {
      this.failSends -= 1;
      throw new Error("connection refused");
    }
    tx.sends += 1;
    if (this.mineOnSend && tx.state.state === "waiting") this.mine(hash);
  }

  async status(txHash: Hex): Promise<SettlementTxState> {
    return this.txs.get(txHash)?.state ?? { state: "waiting" };
  }

  mine(txHash: Hex): void {
    const tx = this.txs.get(txHash)!;
    if (this.revertNext) {
      this.revertNext = false;
      tx.state = { state: "reverted", gasUsed: 30_000n, reason: "NotStaked" };
      return;
    }
    const outcomes: VoucherOutcome[] = tx.vouchers.map((v) => {
      const key = `${v.payer}!${v.node}!${v.listingId}`;
      const growth = v.cumulativeAmount - (this.settled.get(key) ?? 0n);
      if (growth <= 0n) return { status: "skipped", reason: "NotGrowing" };
      const funds = this.funds.get(v.payer);
      if (funds !== undefined && funds < growth) return { status: "skipped", reason: "InsufficientFunds" };
      if (funds !== undefined) this.funds.set(v.payer, funds - growth);
      this.settled.set(key, v.cumulativeAmount);
      this.paid += growth;
      return { status: "paid", amount: growth };
    });
    tx.state = { state: "mined", outcomes, gasUsed: 50_000n + 42_000n * BigInt(outcomes.length) };
  }
}

let dir: string;
let ledger: Ledger;
let escrow: FakeEscrow;
let clock: number;
let n = 0;
const logs: { level: string; event: string; fields: Record<string, unknown> }[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "openlora-settle-"));
  ledger = await Ledger.open(join(dir, "ledger"));
  escrow = new FakeEscrow();
  clock = T0;
  logs.length = 0;
});
afterEach(async () => {
  await ledger.close();
  await rm(dir, { recursive: true, force: true });
});

function job(policy: Partial<SettlementPolicy> = {}): SettlementJob {
  return new SettlementJob({
    ledger,
    settler: escrow,
    node: NODE,
    policy: { intervalMs: 60_000, thresholdWei: 1000n, maxBatch: 10, resendAfterMs: 30_000, ...policy },
    log: { log: (level, event, fields = {}) => logs.push({ level, event, fields }) },
    now: () => clock,
  });
}

/** A paid request raising channel (payer p, listing i) to `cumulative`. */
async function request(p: number, i: number, cumulative: bigint): Promise<void> {
  await ledger.recordRequest(paidRequest(`r${n++}`, PAYERS[p], i, 1n, cumulative, T0));
}

/** Passes until the job has nothing to do; returns what each pass did. */
async function drain(j: SettlementJob): Promise<string[]> {
  const passes: string[] = [];
  for (let i = 0; i < 20; i++) {
    const p = await j.pass();
    passes.push(p);
    if (p === "idle") return passes;
  }
  throw new Error(`no end: ${passes.join(",")}`);
}

async function expectAgreement(): Promise<void> {
  const totals = await ledger.totals();
  expect(totals.settlement.amountPaid).toBe(escrow.paid);
  for (const c of await ledger.channels()) {
    expect(c.settled).toBe(escrow.settled.get(`${c.payer}!${c.node}!${c.listingId}`) ?? 0n);
  }
}

describe("SettlementJob (fake escrow, real ledger)", () => {
  it("waits for the threshold or the interval, then settles everything unsettled", async () => {
    const j = job();
    await request(0, 0, 400n);
    expect(await j.pass()).toBe("idle"); // 400 < 1000 and the interval has not passed
    clock += 59_999;
    expect(await j.pass()).toBe("idle");
    clock += 1;
    expect(await drain(j)).toEqual(["sent", "idle"]);
    expect(await ledger.unsettledChannels()).toEqual([]);
    await request(0, 0, 900n);
    await request(1, 1, 700n); // 500 + 700 unsettled >= 1000: at once
    expect(await drain(j)).toEqual(["sent", "idle"]);
    expect(escrow.paid).toBe(1600n);
    await expectAgreement();
    const confirmed = logs.filter((l) => l.event === "settlement_confirmed");
    expect(confirmed.map((l) => [l.fields.vouchers, l.fields.paid, l.fields.gasUsed])).toEqual([
      [1, 400n, 92_000n],
      [2, 1200n, 134_000n],
    ]);
    expect((await ledger.totals()).settlement).toMatchObject({ batchesConfirmed: 2, gasUsed: 226_000n });
  });

  it("caps batches at maxBatch, largest channels first, one batch in flight at a time", async () => {
    for (let k = 0; k < 7; k++) await request(k % 3, Math.floor(k / 3), BigInt(1000 + k));
    escrow.mineOnSend = false;
    const j = job({ maxBatch: 3 });
    const sizes: number[] = [];
    for (let k = 0; k < 3; k++) {
      expect(await j.pass()).toBe("sent");
      const [hash, tx] = [...escrow.txs].at(-1)!;
      sizes.push(tx.vouchers.length);
      expect(await j.pass()).toBe("waiting"); // not mined yet: nothing new goes out
      escrow.mine(hash);
    }
    expect(await j.pass()).toBe("idle");
    expect(sizes).toEqual([3, 3, 1]);
    const first = [...escrow.txs.values()][0].vouchers.map((v) => v.cumulativeAmount);
    expect(first).toEqual([1006n, 1005n, 1004n]);
    expect(escrow.paid).toBe(7021n);
    await expectAgreement();
  });

  it("records the batch as pending, with its signed bytes, before sending it", async () => {
    await request(0, 0, 5000n);
    let seen: unknown;
    escrow.onSend = async (txHash) => {
      seen = await ledger.findSettlementByTx(txHash);
    };
    await job().pass();
    expect(seen).toMatchObject({ status: "pending", rawTransaction: expect.stringMatching(/^0x[0-9a-f]+$/) });
  });

  it("after a crash before the send, the restarted job sends the recorded bytes and it is paid once", async () => {
    await request(0, 0, 5000n);
    escrow.failSends = 1; // the process dies as it sends: nothing reached the chain
    expect(await job().pass()).toBe("sent");
    expect(escrow.paid).toBe(0n);
    await ledger.close();
    ledger = await Ledger.open(join(dir, "ledger"));
    const restarted = job();
    expect(await restarted.pass()).toBe("waiting"); // reconciled: not mined, so the same bytes went out again
    expect([...escrow.txs.values()].map((t) => t.sends)).toEqual([1]);
    expect(await drain(restarted)).toEqual(["idle"]);
    expect(await ledger.pendingSettlements()).toEqual([]);
    expect(escrow.paid).toBe(5000n);
    await expectAgreement();
  });

  it("after a crash between the send and the receipt, the restarted job records what the chain paid", async () => {
    await request(0, 0, 5000n);
    await request(1, 0, 3000n);
    await job().pass(); // sent and mined; the process dies before it reads the receipt
    await ledger.close();
    ledger = await Ledger.open(join(dir, "ledger"));
    expect((await ledger.pendingSettlements()).length).toBe(1);
    expect(await drain(job())).toEqual(["idle"]);
    expect(escrow.txs.size).toBe(1); // nothing was sent twice
    expect(escrow.paid).toBe(8000n);
    await expectAgreement();
  });

  it("resends a batch the chain has not mined after resendAfterMs", async () => {
    await request(0, 0, 5000n);
    escrow.mineOnSend = false;
    const j = job();
    await j.pass();
    clock += 29_999;
    await j.pass();
    expect([...escrow.txs.values()][0].sends).toBe(1);
    clock += 1;
    await j.pass();
    expect([...escrow.txs.values()][0].sends).toBe(2);
    expect(logs.filter((l) => l.event === "settlement_resent")).toHaveLength(1);
  });

  it("records skipped vouchers with their reason and tries them again only when the channel grows", async () => {
    escrow.funds.set(PAYERS[1], 100n);
    await request(0, 0, 5000n);
    await request(1, 1, 3000n);
    const j = job();
    expect(await drain(j)).toEqual(["sent", "idle"]);
    const skippedChannel = { payer: PAYERS[1], node: NODE, listingId: LISTINGS[1] };
    expect(await ledger.channel(skippedChannel)).toMatchObject({
      settled: 0n,
      lastSkip: { reason: "InsufficientFunds", cumulativeAmount: 3000n },
    });
    expect(logs.find((l) => l.event === "settlement_confirmed")!.fields.skipped).toEqual([
      { payer: PAYERS[1], listingId: LISTINGS[1], reason: "InsufficientFunds" },
    ]);
    clock += 10 * 60_000;
    expect(await j.pass()).toBe("idle"); // still unsettled, but the same voucher would be skipped again
    expect(await ledger.unsettledAmount(skippedChannel)).toBe(3000n);
    escrow.funds.set(PAYERS[1], 10_000n);
    await request(1, 1, 3500n);
    expect(await drain(j)).toEqual(["sent", "idle"]);
    expect(await ledger.channel(skippedChannel)).toMatchObject({ settled: 3500n, lastSkip: null });
    await expectAgreement();
  });

  it("a reverted or dropped batch leaves its vouchers open; the next batch pays them", async () => {
    await request(0, 0, 5000n);
    escrow.revertNext = true;
    const j = job();
    expect(await j.pass()).toBe("sent");
    expect(await j.pass()).toBe("sent"); // the revert is recorded, and the voucher goes out again
    const [reverted] = [...escrow.txs.keys()];
    expect(await ledger.findSettlementByTx(reverted)).toMatchObject({ status: "failed", error: "reverted: NotStaked" });
    expect(await drain(j)).toEqual(["idle"]);
    expect(escrow.paid).toBe(5000n);

    await request(0, 0, 6000n);
    escrow.mineOnSend = false;
    expect(await j.pass()).toBe("sent");
    const dropped = [...escrow.txs.keys()].at(-1)!;
    escrow.txs.get(dropped)!.state = { state: "dropped", reason: "nonce used by another transaction" };
    escrow.mineOnSend = true;
    expect(await drain(j)).toEqual(["sent", "idle"]);
    expect(await ledger.findSettlementByTx(dropped)).toMatchObject({ status: "failed", gasUsed: null });
    expect(escrow.paid).toBe(6000n);
    expect((await ledger.totals()).settlement).toMatchObject({
      batchesConfirmed: 2,
      batchesFailed: 2,
      gasUsed: 214_000n,
    });
    await expectAgreement();
  });

  it("settleNow starts a round below the threshold; start runs the loop until stop", async () => {
    await request(0, 0, 10n);
    const j = job({ pollMs: 5 });
    expect(await j.settleNow()).toBe("sent");
    expect(await j.pass()).toBe("idle"); // confirmed; the round is over
    await request(0, 0, 20n);
    await j.start();
    expect(escrow.paid).toBe(10n); // 10 more is unsettled, but neither due nor forced
    clock += 60_000; // now the interval has passed: the loop settles it on one of its next wake-ups
    await vi.waitFor(() => expect(escrow.paid).toBe(20n), { timeout: 10_000, interval: 5 });
    await j.stop();
    await request(0, 0, 5000n);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(escrow.paid).toBe(20n); // stopped: nothing more goes out
    expect(await drain(j)).toEqual(["sent", "idle"]); // the last loop batch is confirmed, then the 5000 goes out
    expect(escrow.paid).toBe(5000n);
    await expectAgreement();
  });
});
