// node/ledger: the node's usage ledger (LevelDB). Knows requests, vouchers and settlements as records; nothing of
// inference or of the chain.
export { Ledger, type LedgerOptions } from "./ledger.ts";
export { LedgerError } from "./errors.ts";
export { sumUsage } from "./counters.ts";
export type {
  ChannelId,
  ChannelSkip,
  ChannelState,
  LedgerTotals,
  LedgerVoucher,
  PayerTotals,
  RequestReceipt,
  RequestRecord,
  RequestTimings,
  SettlementBatch,
  SettlementRecord,
  SettlementStatus,
  SettlementTotals,
  TokenUsage,
  UnsettledChannel,
  UsageBucket,
  UsageCounters,
  UsageQuery,
  VoucherOutcome,
} from "./types.ts";
