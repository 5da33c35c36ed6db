// Arithmetic on usage counters, shared by the hour buckets and the totals.
import type { RequestRecord, SettlementTotals, UsageCounters } from "./types.ts";

export function zeroCounters(): UsageCounters {
  return { requests: 0, promptTokens: 0, completionTokens: 0, cost: 0n };
}

export function zeroSettlementTotals(): SettlementTotals {
  return { batchesConfirmed: 0, batchesFailed: 0, vouchersPaid: 0, vouchersSkipped: 0, amountPaid: 0n, gasUsed: 0n };
}

/** `c` with one more request `r` counted (the other fields of `c`, e.g. a bucket's adapter, are kept). */
export function addRequest<T extends UsageCounters>(c: T, r: RequestRecord): T {
  return {
    ...c,
    requests: c.requests + 1,
    promptTokens: c.promptTokens + r.usage.promptTokens,
    completionTokens: c.completionTokens + r.usage.completionTokens,
    cost: c.cost + r.cost,
  };
}

/** The sum of several counters (e.g. the hour buckets of a usage query). */
export function sumUsage(items: readonly UsageCounters[]): UsageCounters {
  const sum = zeroCounters();
  for (const c of items) {
    sum.requests += c.requests;
    sum.promptTokens += c.promptTokens;
    sum.completionTokens += c.completionTokens;
    sum.cost += c.cost;
  }
  return sum;
}
