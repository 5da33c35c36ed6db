// Keys inside the ledger's sublevels. Sorted key order is what makes range queries work, so hour numbers are
// zero-padded to a fixed width.
import type { Hex } from "viem";
import type { ChannelId } from "./types.ts";

export const HOUR_MS = 3_600_000;
const HOUR_DIGITS = 12; // hours since 1970; 12 digits last a hundred million years

/** The usage and totals key of an adapter: its content hash, or "base" for the base model. */
export function adapterKey(adapter: Hex | null): string {
  return adapter ?? "base";
}

export function hourOf(ms: number): number {
  return Math.floor(ms / HOUR_MS);
}

export function usageKey(adapter: string, hour: number): string {
  return `${adapter}!${hour.toString().padStart(HOUR_DIGITS, "0")}`;
}

/** Sorts after every usage key of `adapter`. */
export function usageKeyEnd(adapter: string): string {
  return `${adapter}!~`;
}

export function hourFromUsageKey(key: string): number {
  return Number(key.slice(key.lastIndexOf("!") + 1));
}

/** Expects lower-case hex (the ledger normalises before it builds keys). */
export function channelKey(c: ChannelId): string {
  return `${c.payer}!${c.node}!${c.listingId}`;
}

export const TOTAL_ALL = "all";
export const TOTAL_SETTLEMENT = "settlement";
export const ADAPTER_TOTAL_PREFIX = "adapter!";
export const PAYER_TOTAL_PREFIX = "payer!";
