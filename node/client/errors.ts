// Errors of the client SDK. Each says whose fault it was (blame) so that a caller, the gateway or the CLI can
// answer "bad request", "nobody can serve this" or "a node misbehaved" without a list of classes, and whether
// another node may still serve the request (`retryable`: a failure before the first token).
import type { Address, Hex } from "viem";
import { OpenLoraError, type Blame } from "../engine/index.ts";

/** `model` names nothing the client can pay for: no listing, no alias, or a retired listing. */
export class UnknownModelError extends OpenLoraError {
  override name = "UnknownModelError";
  readonly model: string;
  constructor(model: string, message: string, hint?: string) {
    super("model_not_found", message, { blame: "caller", hint });
    this.model = model;
  }
}

/** A request would pass one of the payer's spending limits. */
export class SpendingLimitError extends OpenLoraError {
  override name = "SpendingLimitError";
  readonly limit: "per_request" | "per_hour";
  readonly wanted: bigint;
  readonly allowed: bigint;
  constructor(limit: "per_request" | "per_hour", wanted: bigint, allowed: bigint, message: string) {
    super("spending_limit", message, { blame: "caller", hint: "raise the limit or lower max_tokens" });
    this.limit = limit;
    this.wanted = wanted;
    this.allowed = allowed;
  }
}

/**
 * One node could not serve the request. `retryable`: nothing reached the caller yet, so the next node may try;
 * `status` and `nodeCode` are the node's HTTP status and error code when it answered.
 */
export class NodeAttemptError extends OpenLoraError {
  override name = "NodeAttemptError";
  readonly node: Address;
  readonly retryable: boolean;
  readonly status: number | null;
  readonly nodeCode: string | null;
  /** The node's error body (OpenAI's shape), when it sent one. */
  readonly body: unknown;
  constructor(
    node: Address,
    code: string,
    message: string,
    options: {
      retryable: boolean;
      blame?: Blame;
      status?: number | null;
      nodeCode?: string | null;
      body?: unknown;
      cause?: unknown;
    },
  ) {
    super(code, message, { blame: options.blame ?? "peer", cause: options.cause });
    this.node = node;
    this.retryable = options.retryable;
    this.status = options.status ?? null;
    this.nodeCode = options.nodeCode ?? null;
    this.body = options.body;
  }
}

/**
 * A node's signed receipt does not hold: badly formed, not signed by the node, for another channel or voucher
 * ("receipt_invalid"), or claiming more than the payer signed ("receipt_overclaim"). The receipt is the evidence;
 * the client keeps it on disk and routes no more requests to that node.
 */
export class ReceiptError extends OpenLoraError {
  override name = "ReceiptError";
  readonly node: Address;
  readonly listingId: Hex;
  /** The receipt as the node sent it. */
  readonly evidence: unknown;
  /** The answer that came with it (the text was delivered; only the payment is disputed), when assembled. */
  completion: unknown;
  constructor(
    code: "receipt_invalid" | "receipt_overclaim",
    message: string,
    details: { node: Address; listingId: Hex; evidence: unknown; completion?: unknown },
  ) {
    super(code, message, { blame: "peer" });
    this.node = details.node;
    this.listingId = details.listingId;
    this.evidence = details.evidence;
    this.completion = details.completion;
  }
}

/** Nodes serve the adapter, but the payer holds no deposit for any of them (deposits are per node). */
export class NoDepositError extends OpenLoraError {
  override name = "NoDepositError";
  /** The operators that serve the adapter. */
  readonly nodes: Address[];
  constructor(what: string, nodes: Address[]) {
    super(
      "insufficient_deposit",
      `${nodes.length} node(s) serve ${what}, but you hold no deposit for any of them: ${nodes.join(", ")}`,
      {
        blame: "caller",
        hint: `deposit for one first: openlora deposit --node ${nodes[0]} --amount <OPEN>`,
      },
    );
    this.nodes = nodes;
  }
}
