// The ledger's every query and state transition, on LevelDB files in a temporary folder.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Ledger, LedgerError, sumUsage, type RequestRecord } from "../../node/ledger/index.ts";
import { auditLedger } from "./audit.ts";
import {
  ADAPTERS,
  freeRequest,
  LISTINGS,
  MINUTE,
  NODE,
  paidRequest,
  PAYERS,
  T0,
  txHashOf,
  voucher,
} from "./records.ts";

const HOUR = 60 * MINUTE;
const [payerA, payerB] = PAYERS;
let dir: string;
let ledger: Ledger;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "openlora-ledger-"));
  ledger = await Ledger.open(join(dir, "ledger"));
});
afterEach(async () => {
  await ledger.close();
  await rm(dir, { recursive: true, force: true });
});

async function reopen(): Promise<void> {
  await ledger.close();
  ledger = await Ledger.open(join(dir, "ledger"));
}

/** Three paid requests on two channels and one free request, over two hours. */
async function seed(): Promise<void> {
  expect(await ledger.recordRequest(paidRequest("a1", payerA, 0, 100n, 1000n, T0 + 5 * MINUTE))).toBe(true);
  expect(await ledger.recordRequest(paidRequest("a2", payerA, 0, 50n, 1500n, T0 + HOUR + 1))).toBe(true);
  expect(await ledger.recordRequest(paidRequest("b1", payerB, 1, 70n, 700n, T0 + 10 * MINUTE))).toBe(true);
  expect(await ledger.recordRequest(freeRequest("f1", T0 + 20 * MINUTE))).toBe(true);
}

async function errorOf(p: Promise<unknown> | (() => unknown)): Promise<LedgerError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (error) {
    expect(error).toBeInstanceOf(LedgerError);
    return error as LedgerError;
  }
  throw new Error("expected a LedgerError");
}

describe("Ledger: requests", () => {
  it("stores a request with hex lower-cased, and a retry of the same id counts once", async () => {
    const upper = paidRequest("r1", payerA, 0, 100n, 1000n, T0);
    const mixed: RequestRecord = {
      ...upper,
      payer: payerA.toUpperCase().replace("0X", "0x") as RequestRecord["payer"],
      voucher: {
        ...upper.voucher!,
        payer: payerA.toUpperCase().replace("0X", "0x") as RequestRecord["payer"] & string,
      },
    };
    expect(await ledger.recordRequest(mixed)).toBe(true);
    expect(await ledger.getRequest("r1")).toEqual(upper);
    expect(await ledger.recordRequest(mixed)).toBe(false);
    expect(await ledger.getRequest("missing")).toBeUndefined();
    const totals = await ledger.totals();
    expect(totals.all).toEqual({ requests: 1, promptTokens: 10, completionTokens: 20, cost: 100n });
    await auditLedger(ledger);
  });

  it("counts concurrent requests exactly (writes are serialised)", async () => {
    const records = Array.from({ length: 200 }, (_, i) =>
      paidRequest(`c${i}`, PAYERS[i % 3], i % 3, 7n, BigInt(1000 + i), T0 + i * MINUTE),
    );
    const results = await Promise.all([...records, ...records.slice(0, 50)].map((r) => ledger.recordRequest(r)));
    expect(results.filter(Boolean)).toHaveLength(200);
    const totals = await ledger.totals();
    expect(totals.all).toEqual({ requests: 200, promptTokens: 2000, completionTokens: 4000, cost: 1400n });
    await auditLedger(ledger);
  });

  it("refuses malformed records, naming the field", async () => {
    const good = paidRequest("x", payerA, 0, 1n, 1n, T0);
    const cases: [RequestRecord, RegExp][] = [
      [{ ...good, id: "" }, /request id must be a non-empty string/],
      [{ ...good, payer: "0x12" as RequestRecord["payer"] }, /request x: payer must be 0x and 40 hex digits/],
      [{ ...good, cost: -1n }, /request x: cost must be a bigint >= 0/],
      [{ ...good, cost: 5 as unknown as bigint }, /cost must be a bigint/],
      [{ ...good, usage: { promptTokens: 1.5, completionTokens: 0 } }, /usage.promptTokens must be an integer/],
      [{ ...good, listingId: LISTINGS[1] }, /listingId differs from the voucher's/],
      [
        { ...good, voucher: { ...good.voucher!, signature: "0x00" } },
        /voucher.signature must be 0x and 130 hex digits/,
      ],
      [{ ...good, timings: { ...good.timings, finishedAt: Number.NaN } }, /timings.finishedAt must be a time/],
      [{ ...good, finishReason: "" }, /finishReason must be a non-empty string/],
    ];
    for (const [record, message] of cases) {
      const error = await errorOf(() => ledger.recordRequest(record));
      expect(error.code).toBe("ledger_invalid");
      expect(error.message).toMatch(message);
    }
    expect((await ledger.totals()).all.requests).toBe(0);
  });
});

describe("Ledger: usage by adapter and hour", () => {
  it("answers hour buckets per adapter over a time range, the base model as null", async () => {
    await seed();
    const a0 = await ledger.usage({ adapter: ADAPTERS[0] });
    expect(a0).toEqual([
      { adapter: ADAPTERS[0], hourStart: T0, requests: 1, promptTokens: 10, completionTokens: 20, cost: 100n },
      { adapter: ADAPTERS[0], hourStart: T0 + HOUR, requests: 1, promptTokens: 10, completionTokens: 20, cost: 50n },
    ]);
    // [from, to) selects the buckets whose hour overlaps it.
    expect(await ledger.usage({ adapter: ADAPTERS[0], from: T0 + 30 * MINUTE, to: T0 + HOUR })).toEqual([a0[0]]);
    expect(await ledger.usage({ adapter: ADAPTERS[0], from: T0 + HOUR, to: T0 + HOUR + 1 })).toEqual([a0[1]]);
    expect(await ledger.usage({ adapter: ADAPTERS[0], from: T0 + 2 * HOUR })).toEqual([]);
    expect(
      await ledger.usage({ adapter: ADAPTERS[0].toUpperCase().replace("0X", "0x") as (typeof ADAPTERS)[0] }),
    ).toEqual(a0);
    expect(await ledger.usage({ adapter: null })).toEqual([
      { adapter: null, hourStart: T0, requests: 1, promptTokens: 3, completionTokens: 4, cost: 0n },
    ]);
    expect(await ledger.usage({ adapter: ADAPTERS[2] })).toEqual([]);
    const firstHour = await ledger.usage({ from: T0, to: T0 + HOUR });
    expect(firstHour.map((b) => b.adapter)).toEqual([ADAPTERS[0], ADAPTERS[1], null]);
    expect(sumUsage(firstHour)).toEqual({ requests: 3, promptTokens: 23, completionTokens: 44, cost: 170n });
    expect((await errorOf(() => ledger.usage({ from: -1 }))).message).toMatch(/from must be a time/);
    expect((await errorOf(() => ledger.usage({ adapter: "0xzz" as (typeof ADAPTERS)[0] }))).message).toMatch(
      /adapter must be 0x/,
    );
  });
});

describe("Ledger: channels and totals", () => {
  it("keeps the highest voucher per channel, the consumed sum, and what is unsettled", async () => {
    await seed();
    // A lower voucher finishing late (concurrent requests on one channel) never replaces a higher one.
    await ledger.recordRequest(paidRequest("a3", payerA, 0, 10n, 1200n, T0 + HOUR + 2));
    const chA = { payer: payerA, node: NODE, listingId: LISTINGS[0] };
    expect(await ledger.channel(chA)).toEqual({
      ...chA,
      latest: voucher(payerA, LISTINGS[0], 1500n),
      consumed: 160n,
      settled: 0n,
      requests: 3,
      lastSkip: null,
    });
    expect(await ledger.unsettledAmount(chA)).toBe(1500n);
    expect(await ledger.unsettledAmount({ ...chA, listingId: LISTINGS[2] })).toBe(0n);
    expect(await ledger.channel({ ...chA, listingId: LISTINGS[2] })).toBeUndefined();
    const unsettled = await ledger.unsettledChannels();
    expect(unsettled.map((c) => [c.payer, c.listingId, c.unsettled])).toEqual([
      [payerA, LISTINGS[0], 1500n],
      [payerB, LISTINGS[1], 700n],
    ]);
    expect((await ledger.channels()).length).toBe(2);
  });

  it("totals per adapter, per payer and overall", async () => {
    await seed();
    const totals = await ledger.totals();
    expect(totals.all).toEqual({ requests: 4, promptTokens: 33, completionTokens: 64, cost: 220n });
    expect(totals.adapters).toEqual({
      [ADAPTERS[0]]: { requests: 2, promptTokens: 20, completionTokens: 40, cost: 150n },
      [ADAPTERS[1]]: { requests: 1, promptTokens: 10, completionTokens: 20, cost: 70n },
      base: { requests: 1, promptTokens: 3, completionTokens: 4, cost: 0n },
    });
    expect(totals.payers).toEqual({
      [payerA]: { requests: 2, promptTokens: 20, completionTokens: 40, cost: 150n, settled: 0n },
      [payerB]: { requests: 1, promptTokens: 10, completionTokens: 20, cost: 70n, settled: 0n },
    });
    expect(totals.settlement).toEqual({
      batchesConfirmed: 0,
      batchesFailed: 0,
      vouchersPaid: 0,
      vouchersSkipped: 0,
      amountPaid: 0n,
      gasUsed: 0n,
    });
  });
});

describe("Ledger: settlements", () => {
  const chA = { payer: payerA, node: NODE, listingId: LISTINGS[0] };
  const chB = { payer: payerB, node: NODE, listingId: LISTINGS[1] };

  it("pending, then confirmed once: settled amounts, skips with their reason, totals, gas", async () => {
    await seed();
    const batch = {
      id: "batch-1",
      vouchers: [voucher(payerA, LISTINGS[0], 1500n), voucher(payerB, LISTINGS[1], 700n)],
    };
    const tx = txHashOf("batch-1");
    const pending = await ledger.recordPendingSettlement(batch, tx, "0xF8AB01");
    expect(pending).toMatchObject({ batchId: "batch-1", txHash: tx, status: "pending", outcomes: null, gasUsed: null });
    expect(pending.rawTransaction).toBe("0xf8ab01");
    expect(await ledger.recordPendingSettlement(batch, tx, "0xf8ab01")).toEqual(pending); // a repeat changes nothing
    expect(await ledger.pendingSettlements()).toEqual([pending]);
    await reopen(); // pending survives a restart: that is what reconciliation reads
    expect(await ledger.pendingSettlements()).toEqual([pending]);

    const outcomes = [
      { status: "paid" as const, amount: 1500n },
      { status: "skipped" as const, reason: "InsufficientFunds" },
    ];
    expect(await ledger.confirmSettlement(tx, outcomes, 90_000n)).toBe(true);
    expect(await ledger.confirmSettlement(tx, outcomes, 90_000n)).toBe(false); // confirming twice counts once
    expect(await ledger.pendingSettlements()).toEqual([]);
    expect(await ledger.findSettlementByTx(tx)).toMatchObject({ status: "confirmed", outcomes, gasUsed: 90_000n });
    expect(await ledger.getSettlement("batch-1")).toMatchObject({ status: "confirmed", txHash: tx });
    expect(await ledger.unsettledAmount(chA)).toBe(0n);
    expect(await ledger.channel(chB)).toMatchObject({
      settled: 0n,
      lastSkip: { batchId: "batch-1", reason: "InsufficientFunds", cumulativeAmount: 700n, at: expect.any(Number) },
    });
    expect((await ledger.unsettledChannels()).map((c) => c.listingId)).toEqual([LISTINGS[1]]);
    const totals = await ledger.totals();
    expect(totals.payers[payerA].settled).toBe(1500n);
    expect(totals.payers[payerB].settled).toBe(0n);
    expect(totals.settlement).toEqual({
      batchesConfirmed: 1,
      batchesFailed: 0,
      vouchersPaid: 1,
      vouchersSkipped: 1,
      amountPaid: 1500n,
      gasUsed: 90_000n,
    });

    // The channel grows again; the next batch pays only the growth, and a paid voucher clears the skip.
    await ledger.recordRequest(paidRequest("a4", payerA, 0, 100n, 1800n, T0 + 2 * HOUR));
    expect(await ledger.unsettledAmount(chA)).toBe(300n);
    const tx2 = txHashOf("batch-2");
    await ledger.recordPendingSettlement(
      { id: "batch-2", vouchers: [voucher(payerA, LISTINGS[0], 1800n), voucher(payerB, LISTINGS[1], 700n)] },
      tx2,
    );
    await ledger.confirmSettlement(
      tx2,
      [
        { status: "paid", amount: 300n },
        { status: "paid", amount: 700n },
      ],
      80_000n,
    );
    expect(await ledger.unsettledChannels()).toEqual([]);
    expect(await ledger.channel(chB)).toMatchObject({ settled: 700n, lastSkip: null });
    expect((await ledger.totals()).settlement).toMatchObject({
      batchesConfirmed: 2,
      amountPaid: 2500n,
      gasUsed: 170_000n,
      vouchersPaid: 3,
    });
    await auditLedger(ledger);
  });

  it("a failed batch leaves its vouchers unsettled, keeps its gas, and cannot be confirmed", async () => {
    await seed();
    const tx = txHashOf("batch-f");
    await ledger.recordPendingSettlement({ id: "batch-f", vouchers: [voucher(payerA, LISTINGS[0], 1500n)] }, tx);
    expect(await ledger.failSettlement(tx, "reverted", 30_000n)).toBe(true);
    expect(await ledger.failSettlement(tx, "reverted", 30_000n)).toBe(false);
    expect(await ledger.findSettlementByTx(tx)).toMatchObject({
      status: "failed",
      error: "reverted",
      gasUsed: 30_000n,
    });
    expect(await ledger.pendingSettlements()).toEqual([]);
    expect(await ledger.unsettledAmount(chA)).toBe(1500n);
    expect((await ledger.totals()).settlement).toMatchObject({ batchesFailed: 1, gasUsed: 30_000n, amountPaid: 0n });
    const confirmFailed = await errorOf(ledger.confirmSettlement(tx, [{ status: "paid", amount: 1n }], 1n));
    expect(confirmFailed.code).toBe("ledger_conflict");
    // A dropped transaction: gas unknown.
    const tx2 = txHashOf("batch-g");
    await ledger.recordPendingSettlement({ id: "batch-g", vouchers: [voucher(payerA, LISTINGS[0], 1500n)] }, tx2);
    await ledger.failSettlement(tx2, "dropped", null);
    expect((await ledger.totals()).settlement).toMatchObject({ batchesFailed: 2, gasUsed: 30_000n });
    await auditLedger(ledger);
  });

  it("refuses inconsistent settlement calls, naming the problem", async () => {
    await seed();
    const v = voucher(payerA, LISTINGS[0], 1500n);
    const tx = txHashOf("b");
    await ledger.recordPendingSettlement({ id: "b", vouchers: [v] }, tx);
    const cases: [() => Promise<unknown>, string, RegExp][] = [
      [
        () => ledger.recordPendingSettlement({ id: "b", vouchers: [v] }, txHashOf("other")),
        "ledger_conflict",
        /batch b is already recorded/,
      ],
      [
        () => ledger.recordPendingSettlement({ id: "c", vouchers: [v] }, tx),
        "ledger_conflict",
        /already belongs to batch b/,
      ],
      [
        () => ledger.recordPendingSettlement({ id: "d", vouchers: [] }, txHashOf("d")),
        "ledger_invalid",
        /needs at least one voucher/,
      ],
      [
        () => ledger.recordPendingSettlement({ id: "e", vouchers: [v, v] }, txHashOf("e")),
        "ledger_invalid",
        /two vouchers for one channel/,
      ],
      [
        () => ledger.recordPendingSettlement({ id: "f", vouchers: [voucher(payerA, LISTINGS[2], 1n)] }, txHashOf("f")),
        "ledger_invalid",
        /no channel/,
      ],
      [
        () => ledger.recordPendingSettlement({ id: "g", vouchers: [v] }, "0x1234"),
        "ledger_invalid",
        /transaction hash must be 0x/,
      ],
      [
        () => ledger.recordPendingSettlement({ id: "h", vouchers: [v] }, txHashOf("h"), "0x123"),
        "ledger_invalid",
        /raw transaction must be 0x and an even number of hex digits/,
      ],
      [() => ledger.confirmSettlement(txHashOf("nope"), [], 0n), "ledger_invalid", /no settlement with tx/],
      [() => ledger.confirmSettlement(tx, [], 0n), "ledger_invalid", /0 outcomes for 1 vouchers/],
      [
        () => ledger.confirmSettlement(tx, [{ status: "paid", amount: -1n }], 0n),
        "ledger_invalid",
        /outcome 0.amount must be a bigint >= 0/,
      ],
      [
        () => ledger.confirmSettlement(tx, [{ status: "lost" } as never], 0n),
        "ledger_invalid",
        /outcome 0.status must be/,
      ],
    ];
    for (const [call, code, message] of cases) {
      const error = await errorOf(call);
      expect([error.code, error.message]).toEqual([code, expect.stringMatching(message)]);
    }
    expect(await ledger.confirmSettlement(tx, [{ status: "paid", amount: 1500n }], 50_000n)).toBe(true);
    expect((await errorOf(ledger.failSettlement(tx, "late", null))).code).toBe("ledger_conflict");
    await auditLedger(ledger);
  });
});

describe("Ledger: lifecycle", () => {
  it("keeps everything across close and open, refuses calls once closed, and refuses a second opener", async () => {
    await seed();
    const before = await ledger.totals();
    const second = await errorOf(Ledger.open(join(dir, "ledger")));
    expect(second.code).toBe("ledger_open");
    expect(second.message).toMatch(/another node/);
    await reopen();
    expect(await ledger.totals()).toEqual(before);
    expect(await ledger.getRequest("b1")).toEqual(paidRequest("b1", payerB, 1, 70n, 700n, T0 + 10 * MINUTE));
    const closed = await Ledger.open(join(dir, "other"));
    await closed.close();
    expect((await errorOf(() => closed.totals())).code).toBe("ledger_closed");
    expect((await errorOf(() => closed.recordRequest(freeRequest("z", T0)))).code).toBe("ledger_closed");
  });
});
