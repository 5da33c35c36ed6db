// Deterministic ledger records for the tests: request n always has the same content, so a writer killed and
// restarted can retry an id and the checker can tell what every id must contain.
import { createHash } from "node:crypto";
import type { Address, Hex } from "viem";
import type { LedgerVoucher, RequestRecord } from "../../node/ledger/index.ts";

const hex = (byte: string, bytes: number): Hex => `0x${byte.repeat(bytes)}` as Hex;

export const NODE: Address = hex("0e", 20) as Address;
export const PAYERS: Address[] = [hex("a1", 20), hex("a2", 20), hex("a3", 20)] as Address[];
export const ADAPTERS: Hex[] = [hex("c1", 32), hex("c2", 32), hex("c3", 32)];
export const LISTINGS: Hex[] = [hex("d1", 32), hex("d2", 32), hex("d3", 32)];
export const SIGNATURE: Hex = hex("5e", 65);
/** 2026-01-01T00:00:00Z, a whole hour. */
export const T0 = Date.UTC(2026, 0, 1);
export const MINUTE = 60_000;

export function voucher(payer: Address, listingId: Hex, cumulativeAmount: bigint): LedgerVoucher {
  return { payer, node: NODE, listingId, cumulativeAmount, signature: SIGNATURE };
}

/** A paid request on (payer, adapter i, listing i) finishing at `finishedAt`. */
export function paidRequest(
  id: string,
  payer: Address,
  i: number,
  cost: bigint,
  cumulativeAmount: bigint,
  finishedAt: number,
  usage = { promptTokens: 10, completionTokens: 20 },
): RequestRecord {
  return {
    id,
    adapter: ADAPTERS[i],
    listingId: LISTINGS[i],
    payer,
    node: NODE,
    usage,
    cost,
    voucher: voucher(payer, LISTINGS[i], cumulativeAmount),
    receipt: { cumulativeConsumed: cost, signature: SIGNATURE },
    timings: { receivedAt: finishedAt - 500, firstTokenAt: finishedAt - 400, finishedAt },
    finishReason: "length",
  };
}

/** A free request (no payment) on the base model. */
export function freeRequest(id: string, finishedAt: number): RequestRecord {
  return {
    id,
    adapter: null,
    listingId: null,
    payer: null,
    node: null,
    usage: { promptTokens: 3, completionTokens: 4 },
    cost: 0n,
    voucher: null,
    receipt: null,
    timings: { receivedAt: finishedAt - 100, firstTokenAt: null, finishedAt },
    finishReason: "stop",
  };
}

/**
 * Request number n of the crash test: every 5th is free; the rest spread over 3 payers and 3 listings. A
 * channel's voucher amount grows with n (n * 10^15 + 10^18 is above the sum of costs up to n), so a later
 * request always carries a higher voucher on its channel.
 */
export function requestFor(n: number): RequestRecord {
  const finishedAt = T0 + n * 7 * MINUTE;
  if (n % 5 === 0) return freeRequest(`req-${n}`, finishedAt);
  const usage = { promptTokens: 1 + (n % 13), completionTokens: 1 + (n % 29) };
  const cost = BigInt(usage.promptTokens + usage.completionTokens) * 1_000_000_007n;
  const cumulative = BigInt(n) * 10n ** 15n + 10n ** 18n;
  return paidRequest(`req-${n}`, PAYERS[n % 3], Math.floor(n / 3) % 3, cost, cumulative, finishedAt, usage);
}

/** A transaction hash for a batch id (the tests have no chain). */
export function txHashOf(batchId: string): Hex {
  return `0x${createHash("sha256").update(batchId).digest("hex")}`;
}
