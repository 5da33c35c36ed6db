// node/api: the node service (engine, ledger, chain, peers, settlement) behind an OpenAI-compatible HTTP API.
export { NodeService, type NodeServiceOptions, type StartProgress } from "./node-service.ts";
export { PaidMode, StakeError, type OperatorClients, type PaidModeOptions } from "./paid-mode.ts";
export { SettlementJob, type SettlementPolicy } from "./settlement.ts";
export { ApiError, errorResponse, type OpenAiErrorBody } from "./errors.ts";
export { jsonLogger, silentLogger, type Logger, type LogFields, type LogLevel } from "./log.ts";
export { VOUCHER_HEADER } from "./routes/inference.ts";
export { BODY_LIMIT } from "./server.ts";
