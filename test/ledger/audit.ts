// Recomputes everything the ledger derives (hour buckets, channels, totals) from the request and settlement
// records it holds, and asserts that the ledger's own figures equal them: nothing lost, nothing counted twice.
import { expect } from "vitest";
import type { Ledger, RequestRecord, SettlementRecord, UsageCounters } from "../../node/ledger/index.ts";

const HOUR = 3_600_000;

function add(c: UsageCounters | undefined, r: RequestRecord): UsageCounters {
  const base = c ?? { requests: 0, promptTokens: 0, completionTokens: 0, cost: 0n };
  return {
    requests: base.requests + 1,
    promptTokens: base.promptTokens + r.usage.promptTokens,
    completionTokens: base.completionTokens + r.usage.completionTokens,
    cost: base.cost + r.cost,
  };
}

export async function readAll(ledger: Ledger): Promise<{ requests: RequestRecord[]; settlements: SettlementRecord[] }> {
  const requests: RequestRecord[] = [];
  for await (const r of ledger.requests()) requests.push(r);
  const settlements: SettlementRecord[] = [];
  for await (const s of ledger.settlements()) settlements.push(s);
  return { requests, settlements };
}

export async function auditLedger(
  ledger: Ledger,
): Promise<{ requests: RequestRecord[]; settlements: SettlementRecord[] }> {
  const { requests, settlements } = await readAll(ledger);
  let all: UsageCounters | undefined;
  const adapters: Record<string, UsageCounters> = {};
  const payers: Record<string, UsageCounters & { settled: bigint }> = {};
  const buckets = new Map<string, UsageCounters & { adapter: string | null; hourStart: number }>();
  const channels = new Map<string, { consumed: bigint; requests: number; latest: bigint; settled: bigint }>();
  for (const r of requests) {
    all = add(all, r);
    const a = r.adapter ?? "base";
    adapters[a] = add(adapters[a], r);
    if (r.payer) payers[r.payer] = { ...add(payers[r.payer], r), settled: 0n };
    const hourStart = Math.floor(r.timings.finishedAt / HOUR) * HOUR;
    const bucketKey = `${a}@${hourStart}`;
    buckets.set(bucketKey, { ...add(buckets.get(bucketKey), r), adapter: r.adapter, hourStart });
    if (r.voucher) {
      const key = `${r.voucher.payer}!${r.voucher.node}!${r.voucher.listingId}`;
      const c = channels.get(key) ?? { consumed: 0n, requests: 0, latest: 0n, settled: 0n };
      const latest = r.voucher.cumulativeAmount > c.latest ? r.voucher.cumulativeAmount : c.latest;
      channels.set(key, { consumed: c.consumed + r.cost, requests: c.requests + 1, latest, settled: 0n });
    }
  }
  const settlement = {
    batchesConfirmed: 0,
    batchesFailed: 0,
    vouchersPaid: 0,
    vouchersSkipped: 0,
    amountPaid: 0n,
    gasUsed: 0n,
  };
  for (const s of settlements) {
    if (s.status === "pending") continue;
    settlement.gasUsed += s.gasUsed ?? 0n;
    if (s.status === "failed") {
      settlement.batchesFailed += 1;
      continue;
    }
    settlement.batchesConfirmed += 1;
    for (const [i, v] of s.vouchers.entries()) {
      const o = s.outcomes![i];
      if (o.status === "skipped") {
        settlement.vouchersSkipped += 1;
        continue;
      }
      settlement.vouchersPaid += 1;
      settlement.amountPaid += o.amount;
      payers[v.payer].settled += o.amount;
      const c = channels.get(`${v.payer}!${v.node}!${v.listingId}`)!;
      if (v.cumulativeAmount > c.settled) c.settled = v.cumulativeAmount;
    }
  }
  const totals = await ledger.totals();
  expect(totals).toEqual({
    all: all ?? { requests: 0, promptTokens: 0, completionTokens: 0, cost: 0n },
    adapters,
    payers,
    settlement,
  });
  const usage = await ledger.usage();
  expect(usage).toEqual([...buckets.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, b]) => b));
  const ledgerChannels = await ledger.channels();
  expect(ledgerChannels).toHaveLength(channels.size);
  for (const c of ledgerChannels) {
    const expected = channels.get(`${c.payer}!${c.node}!${c.listingId}`)!;
    expect({
      consumed: c.consumed,
      requests: c.requests,
      latest: c.latest.cumulativeAmount,
      settled: c.settled,
    }).toEqual(expected);
  }
  return { requests, settlements };
}
