// The public types of the serving engine: requests, their stream of events, usage, statistics, options.
import type { FinishReason } from "../text-stream.ts";

/** One completion request. Exactly one of prompt and tokenIds. */
export interface EngineRequest {
  /** Registered adapter id ("0x" + 64 hex), or null for the base model. */
  adapterId: string | null;
  /** Prompt text, encoded with BOS first. */
  prompt?: string;
  /** Prompt token ids, used as given. */
  tokenIds?: readonly number[];
  maxTokens: number;
  /** 0 is greedy (default 1). */
  temperature?: number;
  /** Nucleus mass in (0, 1] (default 1: keep all). */
  topP?: number;
  /** Keep the k most likely tokens, 0 keeps all (default 0). */
  topK?: number;
  /** Seeds this request's own generator; the same seed gives the same output however it is batched. Default: random. */
  seed?: number;
  /** Stop before the first of these strings. */
  stop?: readonly string[];
  /** Keep generating past EOS (benchmarks). */
  ignoreEos?: boolean;
  /** Aborting frees everything the request holds at once; the stream then ends with finishReason "cancelled". */
  signal?: AbortSignal;
  /**
   * Who the request is for (a peer id, a payer address): each owner may hold only a share of the engine's
   * queue, and the scheduler shares batch rows and prefill among owners. Without one, the request is the node's
   * own (CLI, demos): bound by the totals only.
   */
  owner?: string;
}

/** How a request ended ("error": it failed; its stream rejected with the error). */
export type EngineFinishReason = FinishReason | "cancelled" | "error";

/** The final record of a request. Times are milliseconds from submit. */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
  finishReason: EngineFinishReason;
  /** Times the request lost its KV blocks to an older one and was recomputed. */
  preemptions: number;
  timings: {
    /** Until first admitted to a batch. */
    queueMs: number;
    /** Until the first generated token (equal to totalMs when none was generated). */
    ttftMs: number;
    totalMs: number;
  };
}

/**
 * What a request's stream yields: one "token" event per generated token, possibly a "text" event with text held
 * back until the end (an EOS after an incomplete UTF-8 sequence or a stop-string prefix), then one "usage"
 * event. The texts of the token and text events, concatenated, are the whole generated text.
 */
export type EngineEvent =
  | { type: "token"; tokenId: number; /** Text that became final with this token (may be ""). */ text: string }
  | { type: "text"; text: string }
  | { type: "usage"; usage: Usage; /** The whole generated text (cut before a stop string). */ text: string };

/** The outcome of a whole request. */
export interface Completion {
  text: string;
  /** The generated ids (EOS excluded). */
  tokenIds: number[];
  /** The prompt as the engine fed it (BOS included when the prompt was text). */
  promptTokenIds: number[];
  usage: Usage;
}

/** Where an adapter lives now. "disk" means registered but not in memory. */
export type AdapterTier = "gpu" | "host" | "disk";

export interface AdapterInfo {
  id: string;
  rank: number;
  /** Bytes of its canonical encoding (the disk tier's file). */
  bytes: number;
}

/** A registered adapter as listed: where it lives now and the bytes of its canonical encoding. */
export interface AdapterListing {
  id: string;
  tier: AdapterTier;
  bytes: number;
}

/** What the adapter tiers report; every change of an adapter's tier is one of these. */
export interface AdapterEvents {
  /** A new adapter entered the disk tier (import, peer fetch, add). */
  "adapter:registered": AdapterInfo;
  /** Ready in a GPU slot; `ms` from the start of the load (disk or host read included). */
  "adapter:loaded": { id: string; slot: number; ms: number };
  "adapter:load-failed": { id: string; error: unknown };
  /** Left a GPU slot or the host tier (for another adapter, by budget, or unloaded); it stays registered. */
  "adapter:evicted": { id: string; from: "gpu" | "host" };
  /** Deleted from the disk tier: no longer registered. */
  "adapter:removed": { id: string };
}

/** Everything the engine reports: its adapters' tiers, finished requests (with usage) and steps (with timing). */
export interface EngineEvents extends AdapterEvents {
  /** A request ended, however (also cancelled or failed: `error` is set then and usage counts what was done). */
  "request:finished": { requestId: number; adapterId: string | null; usage: Usage; error?: unknown };
  /** One forward step ran: its rows, the tokens fed, the tokens sampled, and how long the backend took. */
  step: { step: number; rows: number; tokens: number; sampled: number; ms: number };
}

/** The engine's fixed sizes: what a request and an adapter may be. */
export interface EngineLimits {
  /** Context length of the model: prompt + max_tokens must fit. */
  maxSeqLen: number;
  /** Largest max_tokens accepted. */
  maxTokens: number;
  /** Positions the whole KV pool holds. */
  kvPositions: number;
  vocabSize: number;
  /** Largest adapter rank a slot holds. */
  maxRank: number;
  adapterSlots: number;
  /** Largest prompt text in UTF-8 bytes: a longer one is refused before it is tokenized. */
  maxPromptBytes: number;
}

/** How much work the engine accepts (admission.ts); beyond a bound, submit throws EngineBusyError. */
export interface AdmissionOptions {
  /** Requests held at once (tokenizing, waiting or running). Default 4096. */
  maxRequests: number;
  /** Tokens (prompt + max_tokens) of the requests held at once. Default 32 x the KV pool's positions. */
  maxTokens: number;
  /** The part of each bound one owner may hold, in (0, 1]. Default 1/4 (so three owners never fill it). */
  ownerShare: number;
}

export interface SlotStats {
  slot: number;
  adapterId: string | null;
  /** Running sequences using it: never evicted while > 0. */
  pins: number;
  state: "empty" | "loading" | "ready";
}

export interface EngineStats {
  queue: {
    /** Requests waiting for admission (including preempted ones). */
    waiting: number;
    running: number;
    /** Waiting requests whose adapter is not yet in a GPU slot. */
    waitingForAdapter: number;
  };
  kv: { blockSize: number; totalBlocks: number; freeBlocks: number };
  slots: SlotStats[];
  tiers: {
    disk: { adapters: number; bytes: number };
    host: { adapters: number; bytes: number; budgetBytes: number };
    gpu: { adapters: number; slots: number };
  };
  tokens: { prompt: number; generated: number; perSecond: number };
  steps: number;
  preemptions: number;
  completed: number;
  /** What admission holds now (admission.ts): requests and their tokens, owners holding any, prompts in tokenization. */
  admission: { requests: number; tokens: number; owners: number; tokenizing: number };
  /** Requests refused as busy since start. */
  busy: number;
}

/** Scheduler knobs; every field has a default. */
export interface SchedulerOptions {
  /** Tokens per forward step (decode rows plus prefill chunks). Default 512. */
  maxBatchTokens: number;
  /** Sequences in a batch at once. Default 64. */
  maxRunning: number;
  /**
   * Steps a request may wait before it stops newer ones from overtaking it, and steps an owner with work may go
   * without a turn in capped steps before it goes first. Default 32.
   */
  agingSteps: number;
  /**
   * When several owners have work, a step costs at most about this many times a lone request's decode step
   * (the engine's fitted step cost turns it into a token cap, at least 1 token). Lower keeps each
   * owner's latency closer to an idle node's and costs throughput (smaller batches); Infinity turns the cap off.
   * At least 1. Default 2.
   */
  slowdown: number;
}
