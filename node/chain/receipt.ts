// The receipt a node signs at the end of a paid request: the payer's evidence of what each request cost and of
// the channel's consumed total, which bounds what the node may settle beyond it (the last request's unused
// max_tokens). EIP-712 on its own domain, bound to the chain and the escrow the vouchers draw on. The node signs
// it (node/api), the payer checks it (node/client): both sides use this one definition.
import { getAddress, isAddress, isAddressEqual, recoverTypedDataAddress, type Address, type Hex } from "viem";
import {
  eip712Domain,
  isCanonicalSignature,
  signTypedData,
  type Eip712Deployment,
  type TypedDataSigner,
} from "./eip712.ts";

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

/** A receipt as an answer carries it that is not one: a missing or mistyped field. */
export class ReceiptFormatError extends Error {
  override name = "ReceiptFormatError";
}

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

const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const UINT = /^(0|[1-9][0-9]{0,77})$/;

/** Reads a receipt back from an answer (the payer's check), field by field; throws ReceiptFormatError. */
export function parseReceiptJson(json: unknown): { receipt: Receipt; signature: Hex } {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ReceiptFormatError("the receipt is not a JSON object");
  }
  const o = json as Record<string, unknown>;
  const text = (field: string): string => {
    const v = o[field];
    if (typeof v !== "string") throw new ReceiptFormatError(`receipt.${field} must be a string`);
    return v;
  };
  const address = (field: string): Address => {
    const v = text(field);
    if (!isAddress(v, { strict: false })) throw new ReceiptFormatError(`receipt.${field} must be an address`);
    return getAddress(v);
  };
  const bytes32 = (field: string): Hex => {
    const v = text(field);
    if (!BYTES32.test(v)) throw new ReceiptFormatError(`receipt.${field} must be 0x and 64 hex digits`);
    return v.toLowerCase() as Hex;
  };
  const amount = (field: string): bigint => {
    const v = text(field);
    if (!UINT.test(v) || BigInt(v) >= 2n ** 256n)
      throw new ReceiptFormatError(`receipt.${field} must be a uint256 in decimal`);
    return BigInt(v);
  };
  const signature = text("signature");
  if (!isCanonicalSignature(signature)) throw new ReceiptFormatError("receipt.signature is not a canonical signature");
  const requestId = text("request_id");
  if (requestId.length === 0 || requestId.length > 256)
    throw new ReceiptFormatError("receipt.request_id must be 1-256 characters");
  return {
    receipt: {
      requestId,
      payer: address("payer"),
      node: address("node"),
      listingId: bytes32("listing_id"),
      adapter: bytes32("adapter"),
      promptTokens: amount("prompt_tokens"),
      completionTokens: amount("completion_tokens"),
      cost: amount("cost"),
      cumulativeConsumed: amount("cumulative_consumed"),
      voucherAmount: amount("voucher_amount"),
    },
    signature,
  };
}
