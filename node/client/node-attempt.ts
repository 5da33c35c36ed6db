// One try of a paid request at one node, over its HTTP API:
//  1. The request without a voucher: the node answers 402 with what it would cost at most (price x (prompt +
//     max_tokens), counted by its tokenizer) and its price, which must not exceed the price it announced.
//  2. Under the channel's lock, a voucher for consumed + held by requests in flight + that most (and above what
//     the node last accepted), its amount written to disk before it leaves. A node whose view of the channel
//     differs answers 402 with the amount it requires: the client signs that once, if it stays within what it
//     already signed on the channel plus this request's most (what an honest node can ask after a request whose
//     receipt was lost), and refuses otherwise.
//  3. The answer streams back; chunks reach the caller only from the first one that commits the answer, so until
//     then a failure is retryable on another node (it never charged: a node charges when the request ends).
//  4. The receipt in the last chunk is checked before that chunk is passed on; a valid one's consumed figure is
//     adopted, one that does not hold is kept as evidence and the node is reported.
import type { Address, Hex, LocalAccount } from "viem";
import {
  encodeVoucherHeader,
  signVoucher,
  VOUCHER_HEADER,
  type Eip712Deployment,
  type Receipt,
} from "../chain/index.ts";
import type { Candidate } from "../p2p/index.ts";
import { channelKey, type ChannelLocks } from "./channel-locks.ts";
import { NodeAttemptError, ReceiptError } from "./errors.ts";
import type { PaymentTarget } from "./listings.ts";
import { commitsAnswer, ENDPOINT_PATHS, type Chunk, type Endpoint } from "./openai-shapes.ts";
import type { PayerState } from "./payer-state.ts";
import { checkReceipt } from "./receipt-check.ts";
import type { SpendingGuard } from "./spending.ts";
import { sseEvents } from "./sse.ts";

/** A node as the client reaches it. */
export interface NodeRef {
  operator: Address;
  peerId: string;
  api: string;
}

/** What the client tells about a request's way through the network. */
export type AttemptEvent =
  | { type: "attempt"; node: NodeRef }
  | { type: "accepted"; node: NodeRef; voucherAmount: bigint; maxCost: bigint }
  | { type: "first-token"; node: NodeRef }
  | { type: "receipt"; node: NodeRef; receipt: Receipt }
  | { type: "dispute"; node: NodeRef; error: ReceiptError };

export interface AttemptContext {
  fetch: typeof fetch;
  payer: LocalAccount;
  escrow: Eip712Deployment;
  state: PayerState;
  spending: SpendingGuard;
  channels: ChannelLocks;
  maxPricePerToken?: bigint;
  signal: AbortSignal;
  emit: (event: AttemptEvent) => void;
}

export interface AttemptRequest {
  endpoint: Endpoint;
  /** The caller's body (OpenAI's request). */
  body: Record<string, unknown>;
  target: PaymentTarget;
}

/** How a request went at the node that answered it. */
export interface AttemptOutcome {
  node: NodeRef;
  /** Wei per token the node charged; 0 for a node that served without payment. */
  pricePerToken: bigint;
  /** The request's most: price x (prompt + max_tokens). */
  maxCost: bigint;
  /** The voucher the request was served on (null: served without payment). */
  voucherAmount: bigint | null;
  receipt: Receipt | null;
  /** The receipt as the node sent it. */
  receiptJson: unknown;
}

/** Shared between the try and its caller: whether any chunk reached the caller (then no failover). */
export interface AttemptProgress {
  delivered: boolean;
}

interface NodeErrorBody {
  message: string;
  code: string | null;
  required?: unknown;
  channel?: { price_per_token?: unknown };
}

export async function* attemptNode(
  ctx: AttemptContext,
  candidate: Candidate,
  request: AttemptRequest,
  progress: AttemptProgress,
): AsyncGenerator<Chunk, AttemptOutcome> {
  const a = candidate.announcement;
  const node: NodeRef = { operator: a.operator, peerId: a.peerId, api: a.api };
  const { target } = request;
  const fail = (
    code: string,
    message: string,
    cause?: unknown,
    extra: { nodeCode?: string | null; body?: unknown } = {},
  ) =>
    new NodeAttemptError(a.operator, code, `node ${a.operator} (${a.api}): ${message}`, {
      retryable: !progress.delivered,
      cause,
      ...extra,
    });
  // Ends the HTTP request when the caller stops reading or gives up (the node then cancels its work).
  const abort = new AbortController();
  const onAbort = (): void => abort.abort(ctx.signal.reason);
  ctx.signal.addEventListener("abort", onAbort, { once: true });
  const userStream = request.body.stream === true;
  const wire = {
    ...request.body,
    model: target.contentHash,
    stream: true,
    // A caller that does not stream gets usage in its whole answer, as OpenAI gives it.
    ...(!userStream && { stream_options: { include_usage: true } }),
  };
  const url = new URL(ENDPOINT_PATHS[request.endpoint], a.api);
  const post = async (voucher?: string): Promise<Response> => {
    try {
      return await ctx.fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...(voucher !== undefined && { [VOUCHER_HEADER]: voucher }) },
        body: JSON.stringify(wire),
        signal: abort.signal,
      });
    } catch (error) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      throw fail("node_unreachable", `cannot reach the node: ${(error as Error).message}`, error);
    }
  };
  /** A non-2xx answer as an error: caller mistakes are final, anything else lets another node try. */
  const refusal = (status: number, { body, error }: NodeError, what: string): NodeAttemptError => {
    const message = `${what}: HTTP ${status} ${error.code ?? ""} ${error.message}`.replace(/\s+/g, " ");
    const callerMistake = status === 400 && !error.code?.startsWith("voucher_");
    return new NodeAttemptError(
      a.operator,
      callerMistake ? "bad_request" : "node_refused",
      `node ${a.operator}: ${message}`,
      {
        retryable: !callerMistake && !progress.delivered,
        blame: callerMistake ? "caller" : "peer",
        status,
        nodeCode: error.code,
        body,
      },
    );
  };

  let release = (): void => {};
  /** The voucher the node accepted (null: none, or served without payment). */
  let voucherAmount: bigint | null = null;
  let maxCost = 0n;
  let pricePerToken = 0n;
  /** The accepted request's end is on record (receipt or dispute); else its voucher counts as exposure. */
  let recorded = false;
  try {
    ctx.emit({ type: "attempt", node });
    let response = await post();
    if (response.status === 402) {
      const answer = await readError(response);
      const { error } = answer;
      if (error.code !== "voucher_required") throw refusal(402, answer, "unexpected answer without a voucher");
      const required = decimal(error.required);
      const price = decimal(error.channel?.price_per_token);
      if (required === null || price === null) {
        throw fail("node_refused", "its 402 answer lacks the amount required or the price");
      }
      maxCost = required;
      pricePerToken = price;
      if (pricePerToken > a.pricePerToken) {
        throw fail(
          "price_above_announced",
          `it charges ${pricePerToken} wei per token, above the ${a.pricePerToken} it announced`,
        );
      }
      if (ctx.maxPricePerToken !== undefined && pricePerToken > ctx.maxPricePerToken) {
        throw fail(
          "price_too_high",
          `it charges ${pricePerToken} wei per token, above the client's ${ctx.maxPricePerToken}`,
        );
      }
      const releaseSpend = await ctx.spending.hold(maxCost);
      try {
        const paid = await pay(ctx, node, target.listingId, maxCost, post, refusal);
        response = paid.response;
        voucherAmount = paid.amount;
        const releaseInflight = paid.release;
        release = () => {
          releaseInflight();
          releaseSpend();
        };
      } catch (error) {
        releaseSpend();
        throw error;
      }
      ctx.emit({ type: "accepted", node, voucherAmount, maxCost });
    } else if (!response.ok) {
      throw refusal(response.status, await readError(response), "the request was refused");
    }

    const held: Chunk[] = [];
    let receipt: Receipt | null = null;
    let receiptJson: unknown = undefined;
    let done = false;
    try {
      for await (const data of sseEvents(response.body!)) {
        if (data === "[DONE]") {
          done = true;
          break;
        }
        const chunk = parseChunk(data);
        if (chunk === null) throw fail("node_bad_answer", `a chunk of its answer is not JSON: ${data.slice(0, 80)}`);
        if (chunk.error !== undefined) {
          const e = chunk.error as { message?: unknown; code?: unknown };
          throw fail("node_stream_error", `its answer failed: ${String(e.message)}`, undefined, {
            nodeCode: typeof e.code === "string" ? e.code : null,
            body: chunk,
          });
        }
        if (chunk.receipt !== undefined && voucherAmount !== null) {
          receiptJson = chunk.receipt;
          receipt = await checkReceipt(chunk.receipt, {
            escrow: ctx.escrow,
            payer: ctx.payer.address,
            node: a.operator,
            listingId: target.listingId,
            contentHash: target.contentHash,
            voucherAmount,
            maxCost,
            pricePerToken,
          });
        }
        if (request.body.model !== undefined) chunk.model = request.body.model;
        if (!progress.delivered) {
          if (!commitsAnswer(chunk)) {
            held.push(chunk);
            continue;
          }
          progress.delivered = true;
          ctx.emit({ type: "first-token", node });
          yield* held;
        }
        yield chunk;
      }
    } catch (error) {
      if (error instanceof ReceiptError || error instanceof NodeAttemptError) throw error;
      if (ctx.signal.aborted) throw ctx.signal.reason;
      throw fail("node_stream_cut", `its answer broke off: ${(error as Error).message}`, error);
    }
    if (!done) throw fail("node_stream_cut", "its answer ended before [DONE]");
    if (voucherAmount !== null && receipt === null) {
      throw new ReceiptError("receipt_invalid", `node ${a.operator}: the paid answer carries no receipt`, {
        node: a.operator,
        listingId: target.listingId,
        evidence: null,
      });
    }
    if (receipt) {
      recorded = true;
      await ctx.state.noteReceipt(a.operator, target.listingId, receipt, receiptJson);
      ctx.emit({ type: "receipt", node, receipt });
    }
    return { node, pricePerToken, maxCost, voucherAmount, receipt, receiptJson };
  } catch (error) {
    if (error instanceof ReceiptError) {
      recorded = true;
      await ctx.state.noteDispute({
        node: a.operator,
        listingId: target.listingId,
        code: error.code,
        message: error.message,
        receipt: error.evidence,
        voucherAmount: voucherAmount ?? 0n,
      });
      ctx.emit({ type: "dispute", node, error });
    }
    throw error;
  } finally {
    abort.abort(); // a no-op after a complete answer; stops the node's work when the caller left early
    ctx.signal.removeEventListener("abort", onAbort);
    // Accepted, then no receipt (the node failed, or the caller stopped reading): the node holds a voucher it may
    // settle, so the request's most counts as spent.
    if (voucherAmount !== null && !recorded) await ctx.state.noteUnreceipted(a.operator, target.listingId, maxCost);
    release();
  }
}

/**
 * Signs and sends the voucher under the channel's lock. Resolves with the node's streaming answer once it accepted
 * (and the hold on the channel that the request keeps until it ends), or throws the node's refusal.
 */
async function pay(
  ctx: AttemptContext,
  node: NodeRef,
  listingId: Hex,
  maxCost: bigint,
  post: (voucher: string) => Promise<Response>,
  refusal: (status: number, answer: NodeError, what: string) => NodeAttemptError,
): Promise<{ response: Response; amount: bigint; release: () => void }> {
  const key = channelKey(node.operator, listingId);
  const unlock = await ctx.channels.lock(key);
  try {
    const channel = await ctx.state.channel(node.operator, listingId);
    const inflight = ctx.channels.inflight(key);
    const covered = channel.consumed + inflight;
    let amount = max(covered + maxCost, channel.accepted + 1n);
    // The most this client lets the node ask: everything it signed on the channel before, plus this request.
    const bound = max(channel.signed, covered) + maxCost;
    for (let tries = 0; ; tries++) {
      await ctx.state.noteSigned(node.operator, listingId, amount);
      const voucher = { payer: ctx.payer.address, node: node.operator, listingId, cumulativeAmount: amount };
      const signature = await signVoucher(ctx.payer, voucher, ctx.escrow);
      const response = await post(encodeVoucherHeader({ voucher, signature }));
      if (response.ok) return { response, amount, release: ctx.channels.hold(key, maxCost) };
      const answer = await readError(response);
      const required = decimal(answer.error.required);
      const resign = answer.error.code === "voucher_too_low" || answer.error.code === "voucher_not_growing";
      if (response.status !== 402 || tries > 0 || !resign || required === null || required <= amount) {
        throw refusal(response.status, answer, `the voucher of ${amount} wei was refused`);
      }
      if (required > bound) {
        throw refusal(
          402,
          answer,
          `it requires a voucher of ${required} wei, more than the ${channel.signed} wei signed on this channel ` +
            `so far plus this request's most of ${maxCost} wei`,
        );
      }
      amount = required;
    }
  } finally {
    unlock();
  }
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** A decimal amount from a node's answer, or null when it is not one. */
function decimal(value: unknown): bigint | null {
  return typeof value === "string" && /^(0|[1-9][0-9]{0,77})$/.test(value) ? BigInt(value) : null;
}

function parseChunk(data: string): Chunk | null {
  try {
    const value: unknown = JSON.parse(data);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Chunk) : null;
  } catch {
    return null;
  }
}

/** The error object of a non-2xx answer (OpenAI's shape), tolerant of anything else. */
interface NodeError {
  body: unknown;
  error: NodeErrorBody;
}

async function readError(response: Response): Promise<NodeError> {
  const text = await response.text().catch(() => "");
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the text is the message
  }
  const e = (body as { error?: Record<string, unknown> })?.error;
  return {
    body,
    error: {
      message: typeof e?.message === "string" ? e.message : text.slice(0, 200),
      code: typeof e?.code === "string" ? e.code : null,
      required: e?.required,
      channel: e?.channel as NodeErrorBody["channel"],
    },
  };
}
