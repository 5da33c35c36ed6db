// Paid mode's gate: a request carries a voucher (x-openlora-voucher) that must be signed by its payer for this
// node and escrow, name a live listing of the adapter the request runs, grow its channel, cover what the channel
// consumed and holds for requests in flight plus this request's most (price x (prompt + max_tokens)), and fit in
// the payer's escrow deposit for this node beside the node's other unsettled vouchers of that payer. Otherwise
// 402 (with the amount required and the channel's state) or 400 (a voucher that can never be accepted). The
// checks that read (signature, listing, deposit) run first; the decision and the reservation then happen in one
// synchronous step, so concurrent requests on a channel cannot both take the same growth.
import { isAddressEqual, type Address } from "viem";
import { recoverVoucherSigner, type Eip712Deployment, type TypedDataSigner } from "../../chain/index.ts";
import type { AdapterId, Usage } from "../../engine/index.ts";
import type { PaidOutcome, PaymentGate, PaymentHold } from "../context.ts";
import { ApiError } from "../errors.ts";
import { unsettledOf, type ChannelBook, type ChannelEntry } from "./channel-book.ts";
import type { EscrowBalances } from "./escrow-balances.ts";
import type { ListingCache } from "./listings.ts";
import { receiptJson, signReceipt, type Receipt } from "../../chain/index.ts";
import { parseVoucherHeader, type SignedVoucher } from "./voucher-header.ts";

export interface VoucherGateOptions {
  operator: Address;
  /** Signs receipts as the operator. */
  signer: TypedDataSigner;
  /** The escrow's chain and address: vouchers and receipts are bound to it. */
  escrow: Eip712Deployment;
  pricePerToken: bigint;
  book: ChannelBook;
  balances: EscrowBalances;
  listings: ListingCache;
}

const HEADER = "x-openlora-voucher";

export class VoucherGate implements PaymentGate {
  readonly #o: VoucherGateOptions;

  constructor(options: VoucherGateOptions) {
    this.#o = options;
  }

  async authorize(request: {
    voucher: string | undefined;
    adapterId: AdapterId | null;
    maxTokens: number;
  }): Promise<PaymentHold> {
    const { operator, pricePerToken } = this.#o;
    const maxCost = pricePerToken * BigInt(request.maxTokens);
    if (request.adapterId === null) {
      throw new ApiError(
        400,
        "model_not_sold",
        "this paid node sells listed adapters: the base model has no listing to pay",
        {
          param: "model",
        },
      );
    }
    if (request.voucher === undefined || request.voucher === "") {
      throw new ApiError(402, "voucher_required", `send a voucher in the ${HEADER} header`, {
        extra: {
          required: maxCost.toString(),
          channel: { node: operator, adapter: request.adapterId, price_per_token: pricePerToken.toString() },
        },
      });
    }
    const signed = parseVoucherHeader(request.voucher);
    await this.#checkVoucher(signed, request.adapterId);
    const payer = signed.voucher.payer;
    const entry = this.#o.book.get(payer, signed.voucher.listingId);
    let available = await this.#o.balances.available(payer);
    for (let fresh = false; ; fresh = true) {
      const outcome = this.#reserve(entry, signed, maxCost, available, request.adapterId);
      if (outcome.hold) return outcome.hold;
      // Short by the cached figure: read the chain once before refusing (a deposit may have just landed).
      if (fresh) throw outcome.error;
      available = await this.#o.balances.available(payer, { fresh: true });
    }
  }

  /** What can be checked of a voucher alone: the node, the signature, the listing. 400 when it fails. */
  async #checkVoucher(signed: SignedVoucher, adapterId: AdapterId): Promise<void> {
    const { voucher, signature } = signed;
    const bad = (code: string, message: string): ApiError => new ApiError(400, code, message, { param: HEADER });
    if (!isAddressEqual(voucher.node, this.#o.operator)) {
      throw bad("voucher_wrong_node", `the voucher is for node ${voucher.node}; this node is ${this.#o.operator}`);
    }
    const signer = await recoverVoucherSigner(voucher, signature, this.#o.escrow);
    if (signer === null || !isAddressEqual(signer, voucher.payer)) {
      throw bad(
        "voucher_bad_signature",
        `the voucher is not signed by its payer ${voucher.payer} for this chain (${this.#o.escrow.chainId}) and escrow`,
      );
    }
    const listing = await this.#o.listings.get(voucher.listingId);
    if (listing === null) throw bad("voucher_unknown_listing", `no listing ${voucher.listingId} in AdapterRegistry`);
    if (listing.contentHash.toLowerCase() !== adapterId) {
      throw bad(
        "voucher_wrong_listing",
        `listing ${voucher.listingId} is adapter ${listing.contentHash}, not ${adapterId}`,
      );
    }
    if (!listing.live) throw bad("voucher_retired_listing", `listing ${voucher.listingId} is retired`);
  }

  /** The decision and the reservation, in one synchronous step. */
  #reserve(
    entry: ChannelEntry,
    signed: SignedVoucher,
    maxCost: bigint,
    available: bigint,
    adapterId: AdapterId,
  ): { hold: PaymentHold; error?: undefined } | { hold?: undefined; error: ApiError } {
    const amount = signed.voucher.cumulativeAmount;
    const accepted = entry.accepted?.voucher.cumulativeAmount ?? 0n;
    const floor = entry.consumed + entry.reserved + maxCost;
    const required = floor > accepted ? floor : accepted + 1n;
    const refuse = (code: string, message: string, extra: Record<string, unknown> = {}) => ({
      error: new ApiError(402, code, message, {
        extra: { required: required.toString(), channel: this.#channelJson(entry), ...extra },
      }),
    });
    if (amount <= accepted) {
      return refuse(
        "voucher_not_growing",
        `the voucher's ${amount} wei does not exceed the ${accepted} wei already accepted on this channel (replayed or old)`,
      );
    }
    if (amount < required) {
      return refuse(
        "voucher_too_low",
        `the voucher's ${amount} wei does not cover ${required} wei: consumed + held for requests in flight + this request's most (price x (prompt + max_tokens))`,
      );
    }
    const needed = this.#o.book.outstanding(signed.voucher.payer) - unsettledOf(entry) + (amount - entry.settled);
    if (available < needed) {
      return refuse(
        "insufficient_escrow",
        `the payer's deposit for this node has ${available} wei available; this voucher and the payer's other unsettled ones need ${needed}`,
        { available: available.toString(), needed: needed.toString() },
      );
    }
    const previous = entry.accepted;
    entry.accepted = signed;
    entry.reserved += maxCost;
    let open = true;
    const close = (): boolean => {
      if (!open) return false;
      open = false;
      entry.reserved -= maxCost;
      return true;
    };
    return {
      hold: {
        payer: signed.voucher.payer,
        listingId: signed.voucher.listingId,
        finish: (requestId, usage) => {
          if (!close()) throw new Error(`the payment of ${requestId} was already closed`);
          return this.#charge(entry, signed, requestId, usage, maxCost, adapterId);
        },
        release: () => {
          // Nothing ran: the voucher is as if never accepted, unless a later one was accepted since.
          if (close() && entry.accepted === signed) entry.accepted = previous;
        },
      },
    };
  }

  /** Charges what the request used (never above what it reserved) and signs the receipt. */
  async #charge(
    entry: ChannelEntry,
    signed: SignedVoucher,
    requestId: string,
    usage: Usage,
    maxCost: bigint,
    adapterId: AdapterId,
  ): Promise<PaidOutcome> {
    const { pricePerToken, operator } = this.#o;
    const used = pricePerToken * BigInt(usage.promptTokens + usage.completionTokens);
    const cost = used < maxCost ? used : maxCost;
    entry.consumed += cost;
    const { voucher, signature } = signed;
    const receipt: Receipt = {
      requestId,
      payer: voucher.payer,
      node: operator,
      listingId: voucher.listingId,
      adapter: adapterId,
      promptTokens: BigInt(usage.promptTokens),
      completionTokens: BigInt(usage.completionTokens),
      cost,
      cumulativeConsumed: entry.consumed,
      voucherAmount: voucher.cumulativeAmount,
    };
    const receiptSignature = await signReceipt(this.#o.signer, receipt, this.#o.escrow);
    return {
      cost,
      payer: voucher.payer,
      node: operator,
      listingId: voucher.listingId,
      voucher: { ...voucher, signature },
      receipt: { cumulativeConsumed: entry.consumed, signature: receiptSignature },
      answer: receiptJson(receipt, receiptSignature),
    };
  }

  #channelJson(entry: ChannelEntry): Record<string, string> {
    return {
      payer: entry.payer,
      node: this.#o.operator,
      listing_id: entry.listingId,
      accepted: (entry.accepted?.voucher.cumulativeAmount ?? 0n).toString(),
      consumed: entry.consumed.toString(),
      reserved: entry.reserved.toString(),
      settled: entry.settled.toString(),
      price_per_token: this.#o.pricePerToken.toString(),
    };
  }
}
