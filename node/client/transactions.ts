// Sending a transaction as the payer or contributor: simulated first, so that a refusal is reported by the
// contract's error name (InsufficientBalance(...), WithdrawalNotReady(...)) before anything is sent; then sent and
// waited for.
import { BaseError, ContractFunctionRevertedError, type Hex, type TransactionReceipt } from "viem";
import type { ChainClients } from "../chain/index.ts";
import { OpenLoraError } from "../engine/index.ts";

export interface TxSummary {
  step: string;
  hash: Hex;
  blockNumber: bigint;
  gasUsed: bigint;
  status: TransactionReceipt["status"];
}

/** A contract refused a call (code: the custom error's name), or a transaction reverted. */
export class ChainActionError extends OpenLoraError {
  override name = "ChainActionError";
  constructor(code: string, message: string, hint?: string) {
    super(code, message, { blame: "caller", hint });
  }
}

/** Simulates `simulate`, then sends `write` and waits for its receipt. */
export async function sendTx(
  clients: ChainClients,
  step: string,
  call: { simulate: () => Promise<unknown>; write: () => Promise<Hex> },
): Promise<TxSummary> {
  try {
    await call.simulate();
  } catch (error) {
    const { name, text } = revertOf(error);
    throw new ChainActionError(name ?? "call_refused", `${step} refused: ${text}`);
  }
  const hash = await call.write();
  const receipt = await clients.public.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new ChainActionError("reverted", `${step} transaction ${hash} reverted`);
  return { step, hash, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed, status: receipt.status };
}

/** The custom error's name and its rendering with arguments, e.g. InsufficientBalance(5, 3). */
export function revertOf(error: unknown): { name: string | null; text: string } {
  if (error instanceof BaseError) {
    const revert = error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (revert instanceof ContractFunctionRevertedError && revert.data?.errorName) {
      const args = (revert.data.args ?? []).map((a) => (typeof a === "bigint" ? a.toString() : String(a)));
      return { name: revert.data.errorName, text: `${revert.data.errorName}(${args.join(", ")})` };
    }
    return { name: null, text: error.shortMessage };
  }
  return { name: null, text: (error as Error).message };
}
