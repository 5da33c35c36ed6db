// The receipt a node signs at the end of a paid request: the payer's evidence of what each request cost and of
// the channel's consumed total, which bounds what the node may settle beyond it (the last request's unused
// max_tokens). EIP-712 on its own domain, bound to the chain and the escrow the vouchers draw on.
import { isAddressEqual, recoverTypedDataAddress, type Address, type Hex } from "viem";
import {
  eip712Domain,
  isCanonicalSignature,
  signTypedData,
  type Eip712Deployment,
  type TypedDataSigner,
} from "../../chain/index.ts";

export const RECEIPT_DOMAIN_NAME = "OpenLoRA Receipt";
export const RECEIPT_DOMAIN_VERSION = "1";

export interface Receipt {
  /** The API's request id ("cmpl-..."). */
  requestId: string;
  payer: Address;
  node: Address;
  listingId: Hex;
  /** The adapter's content hash (what the engine ran). */
  adapter: Hex;
  promptTokens: bigint;
  completionTokens: bigint;
  /** Wei this request cost: price x (prompt + completion tokens). */
  cost: bigint;
  /** Wei consumed on the channel after this request: what the payer owes so far. */
  cumulativeConsumed: bigint;
  /** The voucher this request was served on (its cumulative amount). */
  voucherAmount: bigint;
}

export const receiptTypes = {
  Receipt: [
    { name: "requestId", type: "string" },
    { name: "payer", type: "address" },
    { name: "node", type: "address" },
    { name: "listingId", type: "bytes32" },
    { name: "adapter", type: "bytes32" },
    { name: "promptTokens", type: "uint256" },
    { name: "completionTokens", type: "uint256" },
    { name: "cost", type: "uint256" },
    { name: "cumulativeConsumed", type: "uint256" },
    { name: "voucherAmount", type: "uint256" },
  ],
} as const;

function typedData(receipt: Receipt, deployment: Eip712Deployment) {
  return {
    domain: eip712Domain(RECEIPT_DOMAIN_NAME, RECEIPT_DOMAIN_VERSION, deployment),
    types: receiptTypes,
    primaryType: "Receipt",
    message: { ...receipt },
  } as const;
}

export function signReceipt(signer: TypedDataSigner, receipt: Receipt, deployment: Eip712Deployment): Promise<Hex> {
  return signTypedData(signer, typedData(receipt, deployment));
}

/** True when `signature` is `node`'s signature of `receipt` on this deployment. */
export async function verifyReceipt(
  receipt: Receipt,
  signature: Hex,
  deployment: Eip712Deployment,
  node: Address,
): Promise<boolean> {
  if (!isCanonicalSignature(signature)) return false;
  try {
    return isAddressEqual(await recoverTypedDataAddress({ ...typedData(receipt, deployment), signature }), node);
  } catch {
    return false;
  }
}

/** The receipt as the answer carries it: amounts as decimal strings, and the signature. */
export function receiptJson(receipt: Receipt, signature: Hex): Record<string, string> {
  return {
    request_id: receipt.requestId,
    payer: receipt.payer,
    node: receipt.node,
    listing_id: receipt.listingId,
    adapter: receipt.adapter,
    prompt_tokens: receipt.promptTokens.toString(),
    completion_tokens: receipt.completionTokens.toString(),
    cost: receipt.cost.toString(),
    cumulative_consumed: receipt.cumulativeConsumed.toString(),
    voucher_amount: receipt.voucherAmount.toString(),
    signature,
  };
}

/** Reads a receipt back from an answer (a client's check): the receipt and its signature. */
export function parseReceiptJson(json: Record<string, string>): { receipt: Receipt; signature: Hex } {
  return {
    receipt: {
      requestId: json.request_id,
      payer: json.payer as Address,
      node: json.node as Address,
      listingId: json.listing_id as Hex,
      adapter: json.adapter as Hex,
      promptTokens: BigInt(json.prompt_tokens),
      completionTokens: BigInt(json.completion_tokens),
      cost: BigInt(json.cost),
      cumulativeConsumed: BigInt(json.cumulative_consumed),
      voucherAmount: BigInt(json.voucher_amount),
    },
    signature: json.signature as Hex,
  };
}
