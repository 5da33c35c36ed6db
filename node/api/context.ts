// What the HTTP routes are given: the engine and its tokenizer, the model catalog, the ledger, metrics, the log,
// and, when the node has them, its peer network and payment gate. The node service builds one of these.
import type { AdapterId, ChatTemplate, Engine, Tokenizer, Usage } from "../engine/index.ts";
import type { Ledger, LedgerVoucher, RequestReceipt } from "../ledger/index.ts";
import type { PeerNode } from "../p2p/index.ts";
import type { Address, Hex } from "viem";
import type { Logger } from "./log.ts";
import type { NodeMetrics } from "./metrics/node-metrics.ts";
import type { ModelCatalog } from "./model-catalog.ts";

/** What a paid request cost, as the ledger records it and the answer carries it. */
export interface PaidOutcome {
  cost: bigint;
  payer: Address;
  node: Address;
  listingId: Hex;
  voucher: LedgerVoucher;
  /** For the ledger. */
  receipt: RequestReceipt;
  /** For the client: the signed receipt as JSON (amounts as decimal strings). */
  answer: Record<string, unknown>;
}

/** A paid request's claim on its channel, from acceptance to its end. */
export interface PaymentHold {
  /** Who pays: the engine's owner of the request (each owner may hold only a share of the engine's work). */
  payer: Address;
  /** The listing the voucher pays: an adapter the node lacks is fetched for this listing. */
  listingId: Hex;
  /** The request ended (also cancelled): charges what it used and signs the receipt. */
  finish(requestId: string, usage: Usage): Promise<PaidOutcome>;
  /** The request never reached the engine: gives the reserved amount back. */
  release(): void;
}

/** Checks a request's voucher (header x-openlora-voucher) and reserves its maximum cost; throws 400/402. */
export interface PaymentGate {
  authorize(request: {
    voucher: string | undefined;
    adapterId: AdapterId | null;
    maxTokens: number;
  }): Promise<PaymentHold>;
}

export interface ApiContext {
  engine: Engine;
  tokenizer: Tokenizer;
  chatTemplate: ChatTemplate;
  catalog: ModelCatalog;
  ledger: Ledger;
  metrics: NodeMetrics;
  log: Logger;
  /** Bearer token of the admin routes. */
  adminToken: string;
  /** The peer network, when the node joined one (peers, fetch by id). */
  peers: PeerNode | null;
  /** null: free mode, every request is served without payment. */
  payment: PaymentGate | null;
  /** Requests in flight: shutdown drains them, then cancels what is left. */
  inflight: Set<AbortController>;
  /** Ledger records of answered free requests not yet written (they are written just after the answer). */
  ledgerWrites: Set<Promise<unknown>>;
}
