// node/client: the SDK for paying users. Discovery (gossip or a node's /v1/peers), routing by adapter, vouchers
// per channel with the payer's state on disk, receipts verified, failover before the first token, OpenAI-style
// calls and a paying fetch for the official openai client; the gateway; deposits, withdrawals, listings and
// contributor rewards on chain. Imports engine, chain and p2p; never api.
export {
  PayingClient,
  PayingClient as Client,
  type ChatCompletionParams,
  type ClientEvents,
  type CompletionParams,
  type DiscoveryOptions,
  type PaidCompletion,
  type PayingClientOptions,
  type PaymentInfo,
  type RequestOptions,
} from "./paying-client.ts";
export { CompletionStream } from "./completion-stream.ts";
export { GossipDiscovery, HttpDiscovery, type Discovery, type DiscoveryChain } from "./discovery.ts";
export { ListingResolver, type PaymentTarget } from "./listings.ts";
export type { NodeRef, AttemptEvent } from "./node-attempt.ts";
export { assembleCompletion, type Chunk, type Endpoint } from "./openai-shapes.ts";
export { paidFetch, errorOf } from "./paid-fetch.ts";
export { Gateway, statusJson, type GatewayOptions } from "./gateway.ts";
export {
  PayerState,
  type ChannelRecord,
  type DisputeRecord,
  type PayerStateData,
  type SpendRecord,
} from "./payer-state.ts";
export { SpendingGuard, type SpendingLimits, type SpendingView } from "./spending.ts";
export { checkReceipt, type ReceiptExpectation } from "./receipt-check.ts";
export { NoDepositError, NodeAttemptError, ReceiptError, SpendingLimitError, UnknownModelError } from "./errors.ts";
export {
  cancelWithdrawal,
  depositFor,
  depositsOf,
  executeWithdrawal,
  requestWithdrawal,
  type DepositOutcome,
} from "./deposits.ts";
export { claimRewards, rewardsOf, type RewardLine } from "./rewards.ts";
export {
  adapterFacts,
  AttributionError,
  baseModelIdOf,
  checkAttribution,
  registerListing,
  type AdapterFacts,
  type RegisteredListing,
} from "./listing-registration.ts";
export { ChainActionError, sendTx, type TxSummary } from "./transactions.ts";
