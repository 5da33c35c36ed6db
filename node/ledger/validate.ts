// Checks and normalises what the node hands the ledger, so that a malformed record never reaches the disk and
// every hex value is stored lower-case (keys and comparisons then never depend on checksum casing).
import type { Address, Hex } from "viem";
import { LedgerError } from "./errors.ts";
import type { LedgerVoucher, RequestRecord, SettlementBatch, VoucherOutcome } from "./types.ts";

const MAX_ID_LENGTH = 256;

function invalid(message: string): LedgerError {
  return new LedgerError("ledger_invalid", message);
}

function hex(value: unknown, bytes: number, field: string): Hex {
  if (typeof value !== "string" || !new RegExp(`^0x[0-9a-fA-F]{${bytes * 2}}$`).test(value)) {
    throw invalid(`${field} must be 0x and ${bytes * 2} hex digits, got ${JSON.stringify(value)}`);
  }
  return value.toLowerCase() as Hex;
}

export function address(value: unknown, field: string): Address {
  return hex(value, 20, field);
}

export function bytes32(value: unknown, field: string): Hex {
  return hex(value, 32, field);
}

function signature(value: unknown, field: string): Hex {
  return hex(value, 65, field);
}

function orNull<T>(value: unknown, check: (v: unknown, field: string) => T, field: string): T | null {
  return value === null ? null : check(value, field);
}

export function amount(value: unknown, field: string): bigint {
  if (typeof value !== "bigint" || value < 0n) throw invalid(`${field} must be a bigint >= 0, got ${String(value)}`);
  return value;
}

function count(value: unknown, field: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw invalid(`${field} must be an integer >= 0`);
  return value as number;
}

function time(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw invalid(`${field} must be a time in ms since 1970, got ${String(value)}`);
  }
  return value;
}

export function text(value: unknown, field: string, max = MAX_ID_LENGTH): string {
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    throw invalid(`${field} must be a non-empty string of at most ${max} characters`);
  }
  return value;
}

export function normalizeVoucher(v: LedgerVoucher, field = "voucher"): LedgerVoucher {
  if (typeof v !== "object" || v === null) throw invalid(`${field} must be an object`);
  return {
    payer: address(v.payer, `${field}.payer`),
    node: address(v.node, `${field}.node`),
    listingId: bytes32(v.listingId, `${field}.listingId`),
    cumulativeAmount: amount(v.cumulativeAmount, `${field}.cumulativeAmount`),
    signature: signature(v.signature, `${field}.signature`),
  };
}

/** A checked, lower-cased copy of `r` with only the fields of a RequestRecord. */
export function normalizeRequest(r: RequestRecord): RequestRecord {
  const id = text(r.id, "request id");
  const at = `request ${id}:`;
  const voucher = r.voucher === null ? null : normalizeVoucher(r.voucher, `${at} voucher`);
  const record: RequestRecord = {
    id,
    adapter: orNull(r.adapter, bytes32, `${at} adapter`),
    listingId: orNull(r.listingId, bytes32, `${at} listingId`),
    payer: orNull(r.payer, address, `${at} payer`),
    node: orNull(r.node, address, `${at} node`),
    usage: {
      promptTokens: count(r.usage?.promptTokens, `${at} usage.promptTokens`),
      completionTokens: count(r.usage?.completionTokens, `${at} usage.completionTokens`),
    },
    cost: amount(r.cost, `${at} cost`),
    voucher,
    receipt:
      r.receipt === null
        ? null
        : {
            cumulativeConsumed: amount(r.receipt?.cumulativeConsumed, `${at} receipt.cumulativeConsumed`),
            signature: signature(r.receipt?.signature, `${at} receipt.signature`),
          },
    timings: {
      receivedAt: time(r.timings?.receivedAt, `${at} timings.receivedAt`),
      firstTokenAt: orNull(r.timings?.firstTokenAt, time, `${at} timings.firstTokenAt`),
      finishedAt: time(r.timings?.finishedAt, `${at} timings.finishedAt`),
    },
    finishReason: text(r.finishReason, `${at} finishReason`, 64),
  };
  // The voucher names the channel; the record's own fields must say the same, or totals and channels disagree.
  if (voucher) {
    for (const field of ["payer", "node", "listingId"] as const) {
      if (record[field] !== voucher[field]) throw invalid(`${at} ${field} differs from the voucher's`);
    }
  }
  return record;
}

export function normalizeBatch(batch: SettlementBatch): SettlementBatch {
  const id = text(batch.id, "batch id");
  if (!Array.isArray(batch.vouchers) || batch.vouchers.length === 0) {
    throw invalid(`batch ${id}: needs at least one voucher`);
  }
  const vouchers = batch.vouchers.map((v, i) => normalizeVoucher(v, `batch ${id}: voucher ${i}`));
  const channels = new Set(vouchers.map((v) => `${v.payer}!${v.node}!${v.listingId}`));
  // The escrow pays a channel's growth once per voucher; two vouchers of one channel in a batch is a bug upstream.
  if (channels.size !== vouchers.length) throw invalid(`batch ${id}: two vouchers for one channel`);
  return { id, vouchers };
}

export function normalizeOutcome(o: VoucherOutcome, field: string): VoucherOutcome {
  if (o?.status === "paid") return { status: "paid", amount: amount(o.amount, `${field}.amount`) };
  if (o?.status === "skipped") return { status: "skipped", reason: text(o.reason, `${field}.reason`, 64) };
  throw invalid(`${field}.status must be "paid" or "skipped"`);
}

export function txHash(value: unknown): Hex {
  return bytes32(value, "transaction hash");
}

export function rawTransaction(value: unknown): Hex {
  if (typeof value !== "string" || !/^0x(?:[0-9a-fA-F]{2})+$/.test(value)) {
    throw invalid("raw transaction must be 0x and an even number of hex digits");
  }
  return value.toLowerCase() as Hex;
}
