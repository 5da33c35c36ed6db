// The settlement job's chain side: InferenceEscrow.settle signed with the operator's local key (so the hash is
// known, and recorded, before anything is sent), sent as raw bytes (again, after a crash: harmless), and read
// back from the receipt's VoucherSettled/VoucherSkipped events.
import {
  BaseError,
  encodeFunctionData,
  keccak256,
  NonceTooLowError,
  TransactionReceiptNotFoundError,
  type Address,
  type Hex,
} from "viem";
import { inferenceEscrowAbi, settlementFromReceipt, type ChainClients } from "../chain/index.ts";
import type { LedgerVoucher, VoucherOutcome } from "../ledger/index.ts";
import type { EscrowSettler, PreparedSettlement, SettlementTxState } from "./settlement.ts";

export class ChainEscrowSettler implements EscrowSettler {
  readonly #clients: ChainClients;
  readonly #escrow: Address;
  /** Transactions whose nonce another transaction took while they were not mined: they never will be. */
  readonly #dropped = new Map<Hex, string>();

  constructor(clients: ChainClients, escrow: Address) {
    if (clients.wallet.account.type !== "local") {
      throw new TypeError("settlement signs offline: the operator's wallet must be a local account (a keystore)");
    }
    this.#clients = clients;
    this.#escrow = escrow;
  }

  async prepare(vouchers: readonly LedgerVoucher[]): Promise<PreparedSettlement> {
    const { wallet } = this.#clients;
    const data = encodeFunctionData({
      abi: inferenceEscrowAbi,
      functionName: "settle",
      args: [
        vouchers.map((v) => ({
          payer: v.payer,
          node: v.node,
          listingId: v.listingId,
          cumulativeAmount: v.cumulativeAmount,
        })),
        vouchers.map((v) => v.signature),
      ],
    });
    const request = await wallet.prepareTransactionRequest({
      account: wallet.account,
      chain: wallet.chain,
      to: this.#escrow,
      data,
    });
    const rawTransaction = await wallet.signTransaction({ ...request, account: wallet.account, chain: wallet.chain });
    return { txHash: keccak256(rawTransaction), rawTransaction };
  }

  async send(rawTransaction: Hex): Promise<void> {
    try {
      await this.#clients.public.sendRawTransaction({ serializedTransaction: rawTransaction });
    } catch (error) {
      const message = (error as Error).message;
      if (/already known|known transaction|already imported/i.test(message)) return;
      const nonceUsed =
        error instanceof BaseError
          ? error.walk((e) => e instanceof NonceTooLowError) !== null
          : /nonce too low/i.test(message);
      const hash = keccak256(rawTransaction);
      if (nonceUsed && (await this.#receipt(hash)) === null) {
        this.#dropped.set(hash, "its nonce was used by another transaction");
        return;
      }
      if (nonceUsed) return; // it was mined: nothing to send
      throw error;
    }
  }

  async status(txHash: Hex): Promise<SettlementTxState> {
    const receipt = await this.#receipt(txHash);
    if (receipt === null) {
      const dropped = this.#dropped.get(txHash);
      return dropped === undefined ? { state: "waiting" } : { state: "dropped", reason: dropped };
    }
    if (receipt.status === "reverted")
      return { state: "reverted", gasUsed: receipt.gasUsed, reason: "settle() reverted" };
    const outcomes: VoucherOutcome[] = settlementFromReceipt(receipt, this.#escrow).outcomes.map((o) =>
      o.kind === "settled" ? { status: "paid", amount: o.amount } : { status: "skipped", reason: o.reason },
    );
    return { state: "mined", outcomes, gasUsed: receipt.gasUsed };
  }

  async #receipt(hash: Hex) {
    try {
      return await this.#clients.public.getTransactionReceipt({ hash });
    } catch (error) {
      if (error instanceof TransactionReceiptNotFoundError) return null;
      throw error;
    }
  }
}
