// The devnet's payer for requests sent to a node chosen by name, which the client SDK does not do (it routes only
// to nodes that announce the adapter; the devnet wants a node that must fetch it): keeps each channel's consumed
// figure, signs a voucher per request (consumed + price x (prompt + max_tokens), the prompt counted as at most one
// token per UTF-8 byte plus BOS), posts the request and checks the node's signed receipt (its signer, and that it
// claims no more than the voucher allowed).
import { isAddressEqual, type Address, type Hex, type LocalAccount } from "viem";
import {
  encodeVoucherHeader,
  parseReceiptJson,
  signVoucher,
  verifyReceipt,
  VOUCHER_HEADER,
  type EscrowDomain,
} from "../../chain/index.ts";
import { OpenLoraError } from "../../engine/index.ts";

export interface PaidTarget {
  url: string;
  operator: Address;
  pricePerToken: bigint;
}

export interface PaidRequest {
  contentHash: Hex;
  listingId: Hex;
  prompt: string;
  maxTokens: number;
}

export interface PaidAnswer {
  text: string;
  promptTokens: number;
  completionTokens: number;
  cost: bigint;
  voucherAmount: bigint;
}

/** A node answered a paid request with an error, or with a receipt that does not hold. */
export class PaidRequestError extends OpenLoraError {
  override name = "PaidRequestError";
}

export class DevnetPayer {
  readonly account: LocalAccount;
  readonly #escrow: EscrowDomain;
  /** Consumed wei per channel (node, listing), as the node's last receipt stated it. */
  readonly #consumed = new Map<string, bigint>();

  constructor(account: LocalAccount, escrow: EscrowDomain) {
    this.account = account;
    this.#escrow = escrow;
  }

  async complete(target: PaidTarget, request: PaidRequest): Promise<PaidAnswer> {
    const channel = `${target.operator.toLowerCase()}|${request.listingId}`;
    const consumed = this.#consumed.get(channel) ?? 0n;
    const promptBound = Buffer.byteLength(request.prompt) + 1;
    const voucher = {
      payer: this.account.address,
      node: target.operator,
      listingId: request.listingId,
      cumulativeAmount: consumed + target.pricePerToken * BigInt(promptBound + request.maxTokens),
    };
    const signature = await signVoucher(this.account, voucher, this.#escrow);
    const response = await fetch(`${target.url}/v1/completions`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [VOUCHER_HEADER]: encodeVoucherHeader({ voucher, signature }),
      },
      body: JSON.stringify({
        model: request.contentHash,
        prompt: request.prompt,
        max_tokens: request.maxTokens,
        temperature: 0,
      }),
    });
    const body = (await response.json()) as {
      choices?: { text: string }[];
      receipt?: Record<string, string>;
      error?: { message: string; code: string };
    };
    if (!response.ok || !body.receipt || !body.choices) {
      throw new PaidRequestError("request_failed", `${target.url}: ${response.status} ${body.error?.message ?? ""}`, {
        blame: "peer",
      });
    }
    const { receipt, signature: receiptSignature } = parseReceiptJson(body.receipt);
    const signedByNode = await verifyReceipt(receipt, receiptSignature, this.#escrow, target.operator);
    if (!signedByNode || !isAddressEqual(receipt.payer, this.account.address)) {
      throw new PaidRequestError("bad_receipt", `${target.url}: the receipt is not the node's for this payer`, {
        blame: "peer",
      });
    }
    if (receipt.cumulativeConsumed > voucher.cumulativeAmount || receipt.cumulativeConsumed < consumed) {
      throw new PaidRequestError(
        "receipt_overclaims",
        `${target.url}: the receipt states ${receipt.cumulativeConsumed} wei consumed; the voucher allowed ${voucher.cumulativeAmount}`,
        { blame: "peer" },
      );
    }
    this.#consumed.set(channel, receipt.cumulativeConsumed);
    return {
      text: body.choices[0].text,
      promptTokens: Number(receipt.promptTokens),
      completionTokens: Number(receipt.completionTokens),
      cost: receipt.cost,
      voucherAmount: voucher.cumulativeAmount,
    };
  }
}
