// Values on disk are JSON with every bigint written as a decimal string; these turn them back into records.
import type {
  ChannelState,
  LedgerVoucher,
  PayerTotals,
  RequestRecord,
  SettlementRecord,
  SettlementTotals,
  UsageCounters,
  VoucherOutcome,
} from "./types.ts";

/** The JSON form of T: bigints become decimal strings. */
export type Stored<T> = T extends bigint
  ? string
  : T extends (infer U)[]
    ? Stored<U>[]
    : T extends object
      ? { [K in keyof T]: Stored<T[K]> }
      : T;

/** JSON text of a record, bigints as decimal strings. */
export function encode(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
}

export function decodeVoucher(s: Stored<LedgerVoucher>): LedgerVoucher {
  return { ...s, cumulativeAmount: BigInt(s.cumulativeAmount) };
}

export function decodeRequest(text: string): RequestRecord {
  const s = JSON.parse(text) as Stored<RequestRecord>;
  return {
    ...s,
    cost: BigInt(s.cost),
    voucher: s.voucher === null ? null : decodeVoucher(s.voucher),
    receipt: s.receipt === null ? null : { ...s.receipt, cumulativeConsumed: BigInt(s.receipt.cumulativeConsumed) },
  };
}

export function decodeCounters(text: string): UsageCounters {
  const s = JSON.parse(text) as Stored<UsageCounters>;
  return { ...s, cost: BigInt(s.cost) };
}

export function decodePayerTotals(text: string): PayerTotals {
  const s = JSON.parse(text) as Stored<PayerTotals>;
  return { ...s, cost: BigInt(s.cost), settled: BigInt(s.settled) };
}

export function decodeChannel(text: string): ChannelState {
  const s = JSON.parse(text) as Stored<ChannelState>;
  return {
    ...s,
    latest: decodeVoucher(s.latest),
    consumed: BigInt(s.consumed),
    settled: BigInt(s.settled),
    lastSkip: s.lastSkip === null ? null : { ...s.lastSkip, cumulativeAmount: BigInt(s.lastSkip.cumulativeAmount) },
  };
}

function decodeOutcome(s: Stored<VoucherOutcome>): VoucherOutcome {
  return s.status === "paid" ? { status: "paid", amount: BigInt(s.amount) } : s;
}

export function decodeSettlement(text: string): SettlementRecord {
  const s = JSON.parse(text) as Stored<SettlementRecord>;
  return {
    ...s,
    vouchers: s.vouchers.map(decodeVoucher),
    outcomes: s.outcomes === null ? null : s.outcomes.map(decodeOutcome),
    gasUsed: s.gasUsed === null ? null : BigInt(s.gasUsed),
  };
}

export function decodeSettlementTotals(text: string): SettlementTotals {
  const s = JSON.parse(text) as Stored<SettlementTotals>;
  return { ...s, amountPaid: BigInt(s.amountPaid), gasUsed: BigInt(s.gasUsed) };
}
