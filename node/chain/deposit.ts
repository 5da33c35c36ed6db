// A payer's deposit for one node, as the node must see it before accepting a voucher: only the deposit the payer
// holds for THIS node pays its vouchers, and an amount under a pending withdrawal request (matured or not, until
// it lapses) may leave at any time, so it does not count.
import type { Address } from "viem";
import { inferenceEscrowAbi } from "./generated/abi.ts";
import type { ReadClient } from "./read-client.ts";

/** A pending withdrawal request: executable from `availableAt` until just before `expiresAt` (unix seconds). */
export interface WithdrawalRequest {
  amount: bigint;
  availableAt: bigint;
  expiresAt: bigint;
}

export interface DepositView {
  /** Everything the payer holds for the node (including what a request may take out). */
  balance: bigint;
  /** What the node may accept vouchers against: balance minus a request that has not lapsed. */
  available: bigint;
  /** The pending request, or null when none. It may have lapsed (then `available` already ignores it). */
  withdrawal: WithdrawalRequest | null;
}

/**
 * What `payer` has available for `node` (InferenceEscrow.available): the balance minus any pending request. A node
 * accepts a voucher only when its growth plus the node's other unsettled growth from this payer fits in it.
 */
export function availableFor(client: ReadClient, escrow: Address, payer: Address, node: Address): Promise<bigint> {
  return client.readContract({
    address: escrow,
    abi: inferenceEscrowAbi,
    functionName: "available",
    args: [payer, node],
  });
}

/** The deposit `payer` holds for `node`: balance, available amount and pending request, read at one block. */
export async function readDeposit(
  client: ReadClient,
  escrow: Address,
  payer: Address,
  node: Address,
): Promise<DepositView> {
  const at = {
    address: escrow,
    abi: inferenceEscrowAbi,
    args: [payer, node],
    // cacheTime 0: viem reuses a block number for seconds: a change just mined would not be seen.
    blockNumber: await client.getBlockNumber({ cacheTime: 0 }),
  } as const;
  const [balance, available, w] = await Promise.all([
    client.readContract({ ...at, functionName: "balanceOf" }),
    client.readContract({ ...at, functionName: "available" }),
    client.readContract({ ...at, functionName: "withdrawalOf" }),
  ]);
  return {
    balance,
    available,
    withdrawal:
      w.amount === 0n ? null : { amount: w.amount, availableAt: BigInt(w.availableAt), expiresAt: BigInt(w.expiresAt) },
  };
}
