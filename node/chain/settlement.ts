// What a settle() transaction did, voucher by voucher, read back from the escrow's events: how a node reconciles
// its ledger after a crash (it recorded the tx hash before sending) or audits what the chain paid it. The escrow
// emits exactly one VoucherSettled or VoucherSkipped per voucher, in batch order, then one BatchSettled.
import {
  isAddressEqual,
  parseEventLogs,
  TransactionReceiptNotFoundError,
  type Address,
  type Hex,
  type Log,
  type TransactionReceipt,
} from "viem";
import { inferenceEscrowAbi } from "./generated/abi.ts";
import type { ReadClient } from "./read-client.ts";
import { skipReasonName, type SkipReasonName } from "./voucher.ts";

interface OutcomeBase {
  node: Address;
  payer: Address;
  listingId: Hex;
  cumulativeAmount: bigint;
  txHash: Hex;
  blockNumber: bigint;
  logIndex: number;
}

/** A voucher paid: `amount` is the growth over the channel's previous settlement. */
export interface SettledVoucher extends OutcomeBase {
  kind: "settled";
  amount: bigint;
}

/** A voucher not paid, and why (the channel did not move). */
export interface SkippedVoucher extends OutcomeBase {
  kind: "skipped";
  reason: SkipReasonName;
}

export type VoucherOutcome = SettledVoucher | SkippedVoucher;

/** The totals of one settle call (BatchSettled). */
export interface BatchTotals {
  count: bigint;
  paid: bigint;
  protocolFee: bigint;
  contributorShare: bigint;
}

/** One settle transaction as mined. */
export interface SettlementReceipt {
  txHash: Hex;
  blockNumber: bigint;
  /** "reverted": nothing was paid or skipped (e.g. the node could not settle); the vouchers are still open. */
  status: "success" | "reverted";
  /** One per voucher, in the order of the batch (empty when reverted). */
  outcomes: VoucherOutcome[];
  totals: BatchTotals | null;
}

/** The voucher outcomes among `logs` (only those the escrow at `escrow` emitted), in log order. */
export function voucherOutcomes(logs: readonly Log[], escrow: Address): VoucherOutcome[] {
  const own = logs.filter((l) => isAddressEqual(l.address, escrow));
  const out: VoucherOutcome[] = [];
  for (const l of parseEventLogs({ abi: inferenceEscrowAbi, logs: own, strict: true })) {
    if (l.eventName !== "VoucherSettled" && l.eventName !== "VoucherSkipped") continue;
    const base: OutcomeBase = {
      node: l.args.node,
      payer: l.args.payer,
      listingId: l.args.listingId,
      cumulativeAmount: l.args.cumulativeAmount,
      txHash: l.transactionHash,
      blockNumber: l.blockNumber,
      logIndex: l.logIndex,
    };
    if (l.eventName === "VoucherSettled") out.push({ ...base, kind: "settled", amount: l.args.amount });
    else out.push({ ...base, kind: "skipped", reason: skipReasonName(l.args.reason) });
  }
  return out;
}

/** Reads a mined settle transaction's receipt into per-voucher outcomes and totals. */
export function settlementFromReceipt(receipt: TransactionReceipt, escrow: Address): SettlementReceipt {
  const own = receipt.logs.filter((l) => isAddressEqual(l.address, escrow));
  const batch = parseEventLogs({ abi: inferenceEscrowAbi, logs: own, eventName: "BatchSettled", strict: true })[0];
  return {
    txHash: receipt.transactionHash,
    blockNumber: receipt.blockNumber,
    status: receipt.status,
    outcomes: voucherOutcomes(receipt.logs, escrow),
    totals: batch
      ? {
          count: batch.args.count,
          paid: batch.args.paid,
          protocolFee: batch.args.protocolFee,
          contributorShare: batch.args.contributorShare,
        }
      : null,
  };
}

/**
 * The outcome of the settle transaction `txHash`, or null when the chain does not know it as mined (never sent,
 * dropped, or still pending: the node may resend the same vouchers; a channel never pays twice).
 */
export async function findSettlement(
  client: ReadClient,
  escrow: Address,
  txHash: Hex,
): Promise<SettlementReceipt | null> {
  try {
    return settlementFromReceipt(await client.getTransactionReceipt({ hash: txHash }), escrow);
  } catch (error) {
    if (error instanceof TransactionReceiptNotFoundError) return null;
    throw error;
  }
}

/** Every voucher outcome of `node`'s settlements in a block range (optionally of one payer), in chain order. */
export async function settlementHistory(
  client: ReadClient,
  escrow: Address,
  filter: { node: Address; payer?: Address; fromBlock: bigint; toBlock?: bigint },
): Promise<VoucherOutcome[]> {
  const args = { node: filter.node, payer: filter.payer };
  const range = { fromBlock: filter.fromBlock, toBlock: filter.toBlock };
  const [settled, skipped] = await Promise.all([
    client.getContractEvents({ address: escrow, abi: inferenceEscrowAbi, eventName: "VoucherSettled", args, ...range }),
    client.getContractEvents({ address: escrow, abi: inferenceEscrowAbi, eventName: "VoucherSkipped", args, ...range }),
  ]);
  const logs = [...settled, ...skipped].sort((a, b) =>
    a.blockNumber === b.blockNumber ? a.logIndex - b.logIndex : a.blockNumber < b.blockNumber ? -1 : 1,
  );
  return voucherOutcomes(logs as Log[], escrow);
}
