// The payer's check of a node's receipt. The receipt must be the node's signature over this very request: this
// payer, this node, this listing and adapter, the voucher the payer sent. Its figures must stay within what the
// payer signed: the request's cost within its most (price x (prompt + max_tokens)), the channel's consumed total
// within the voucher. Only then does the payer adopt the node's consumed figure; a receipt claiming more is
// evidence against the node.
import { isAddressEqual, type Address, type Hex } from "viem";
import {
  parseReceiptJson,
  ReceiptFormatError,
  verifyReceipt,
  type Eip712Deployment,
  type Receipt,
} from "../chain/index.ts";
import { ReceiptError } from "./errors.ts";

/** What the payer knows the receipt must say. */
export interface ReceiptExpectation {
  escrow: Eip712Deployment;
  payer: Address;
  node: Address;
  listingId: Hex;
  contentHash: Hex;
  /** The voucher the request was sent with. */
  voucherAmount: bigint;
  /** price x (prompt + max_tokens): the request's most. */
  maxCost: bigint;
  pricePerToken: bigint;
}

/** The receipt, verified; throws ReceiptError (the evidence attached) when it does not hold. */
export async function checkReceipt(json: unknown, expect: ReceiptExpectation): Promise<Receipt> {
  const fail = (code: "receipt_invalid" | "receipt_overclaim", message: string): ReceiptError =>
    new ReceiptError(code, `node ${expect.node}: ${message}`, {
      node: expect.node,
      listingId: expect.listingId,
      evidence: json,
    });
  if (json === undefined || json === null) throw fail("receipt_invalid", "the paid answer carries no receipt");
  let parsed: { receipt: Receipt; signature: Hex };
  try {
    parsed = parseReceiptJson(json);
  } catch (error) {
    if (error instanceof ReceiptFormatError) throw fail("receipt_invalid", error.message);
    throw error;
  }
  const { receipt: r, signature } = parsed;
  if (!(await verifyReceipt(r, signature, expect.escrow, expect.node))) {
    throw fail("receipt_invalid", "the receipt is not signed by the node for this chain and escrow");
  }
  if (!isAddressEqual(r.payer, expect.payer) || !isAddressEqual(r.node, expect.node)) {
    throw fail("receipt_invalid", `the receipt is for payer ${r.payer} and node ${r.node}`);
  }
  if (r.listingId !== expect.listingId.toLowerCase() || r.adapter !== expect.contentHash.toLowerCase()) {
    throw fail("receipt_invalid", `the receipt names listing ${r.listingId} and adapter ${r.adapter}`);
  }
  if (r.voucherAmount !== expect.voucherAmount) {
    throw fail(
      "receipt_invalid",
      `the receipt names a voucher of ${r.voucherAmount} wei; the payer sent ${expect.voucherAmount}`,
    );
  }
  if (r.cumulativeConsumed > r.voucherAmount) {
    throw fail(
      "receipt_overclaim",
      `the receipt claims ${r.cumulativeConsumed} wei consumed on the channel, ` +
        `more than the ${r.voucherAmount} wei the payer signed`,
    );
  }
  if (r.cost > expect.maxCost) {
    throw fail(
      "receipt_overclaim",
      `the receipt charges ${r.cost} wei, more than the request's most of ${expect.maxCost} wei`,
    );
  }
  const tokens = r.promptTokens + r.completionTokens;
  if (r.cost !== expect.pricePerToken * tokens) {
    throw fail(
      "receipt_invalid",
      `the receipt charges ${r.cost} wei for ${tokens} tokens at ${expect.pricePerToken} wei per token`,
    );
  }
  return r;
}
