// What the ledger stores and answers, in the node's own terms. Amounts are wei as bigint (stored as decimal
// strings); hex values (addresses, listing ids, content hashes, signatures, tx hashes) are kept lower-case so
// that keys and comparisons never depend on checksum casing; times are Unix epoch milliseconds.
import type { Address, Hex } from "viem";

/** A payer's signed promise on one channel (payer, node, listing), as the API accepted it. */
export interface LedgerVoucher {
  payer: Address;
  node: Address;
  listingId: Hex; // bytes32
  cumulativeAmount: bigint;
  signature: Hex;
}

/** One payment channel: the escrow pays per (payer, node, listing). */
export interface ChannelId {
  payer: Address;
  node: Address;
  listingId: Hex;
}

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface RequestTimings {
  receivedAt: number;
  /** null when no token came out (refused, cancelled before the first token). */
  firstTokenAt: number | null;
  /** The request's hour bucket in the usage index is taken from this time. */
  finishedAt: number;
}

/** What the node signed for the payer at the end of a request. */
export interface RequestReceipt {
  /** The channel's consumed total after this request, as the receipt states it. */
  cumulativeConsumed: bigint;
  signature: Hex;
}

/** One finished request. Free requests (no payment) have a null voucher and receipt and a zero cost. */
export interface RequestRecord {
  id: string;
  /** The adapter's content hash; null for the base model. */
  adapter: Hex | null;
  listingId: Hex | null;
  payer: Address | null;
  node: Address | null;
  usage: TokenUsage;
  cost: bigint;
  /** When present, its payer, node and listing id must equal the record's. */
  voucher: LedgerVoucher | null;
  receipt: RequestReceipt | null;
  timings: RequestTimings;
  finishReason: string;
}

export interface UsageCounters {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  cost: bigint;
}

/** Usage of one adapter (null: the base model) during one hour starting at `hourStart` (ms, UTC hour). */
export interface UsageBucket extends UsageCounters {
  adapter: Hex | null;
  hourStart: number;
}

export interface UsageQuery {
  /** One adapter (null: the base model); absent: every adapter. */
  adapter?: Hex | null;
  /** Buckets whose hour overlaps [from, to) are returned; both optional (ms). */
  from?: number;
  to?: number;
}

/** Why a channel's last voucher was skipped by the escrow (the reason name from the VoucherSkipped event). */
export interface ChannelSkip {
  batchId: string;
  reason: string;
  /** The skipped voucher's amount: a settler can wait for a higher voucher before trying the channel again. */
  cumulativeAmount: bigint;
  /** When the skip was recorded (ms). */
  at: number;
}

export interface ChannelState extends ChannelId {
  /** The highest voucher recorded on this channel. */
  latest: LedgerVoucher;
  /** Sum of the costs of the requests recorded on this channel. */
  consumed: bigint;
  /** The cumulative amount confirmed settled on chain (the highest paid voucher). */
  settled: bigint;
  requests: number;
  /** Set when the last settlement skipped this channel's voucher; cleared when one is paid. */
  lastSkip: ChannelSkip | null;
}

export interface UnsettledChannel extends ChannelState {
  /** latest.cumulativeAmount - settled, > 0. */
  unsettled: bigint;
}

export type SettlementStatus = "pending" | "confirmed" | "failed";

/** What the escrow did with one voucher of a batch. `amount` is what it paid (the growth since last time). */
export type VoucherOutcome = { status: "paid"; amount: bigint } | { status: "skipped"; reason: string };

export interface SettlementBatch {
  id: string;
  vouchers: LedgerVoucher[];
}

export interface SettlementRecord {
  batchId: string;
  txHash: Hex;
  /** The signed transaction, when the settler gave it: what a restart sends again if it never left. */
  rawTransaction: Hex | null;
  status: SettlementStatus;
  vouchers: LedgerVoucher[];
  /** One per voucher, in order; null until confirmed. */
  outcomes: VoucherOutcome[] | null;
  /** null while pending (and for a failed batch whose gas is unknown, e.g. a dropped transaction). */
  gasUsed: bigint | null;
  /** Why the batch failed; null otherwise. */
  error: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface PayerTotals extends UsageCounters {
  /** Paid on chain from this payer's vouchers to this node. */
  settled: bigint;
}

export interface SettlementTotals {
  batchesConfirmed: number;
  batchesFailed: number;
  vouchersPaid: number;
  vouchersSkipped: number;
  amountPaid: bigint;
  /** Gas of confirmed and failed batches. */
  gasUsed: bigint;
}

export interface LedgerTotals {
  all: UsageCounters;
  /** Keyed by adapter content hash, "base" for the base model. */
  adapters: Record<string, UsageCounters>;
  /** Keyed by payer address (lower-case). */
  payers: Record<string, PayerTotals>;
  settlement: SettlementTotals;
}
