import { randomInt } from "node:crypto";
import type { SamplingParams } from "../backend/backend.ts";
import { InvalidRequestError } from "../errors.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { isAdapterId } from "../adapter/id.ts";
import type { EngineLimits, EngineRequest } from "./types.ts";

/** A request that passed every check, with its defaults filled in. */
export interface ValidRequest {
  adapterId: string | null;
  promptIds: number[];
  maxTokens: number;
  params: SamplingParams;
  seed: number;
  stop: string[];
  ignoreEos: boolean;
}

/** A request checked in all but its prompt's length in tokens: its prompt as ids, or as text within the byte bound. */
export interface CheckedRequest extends Omit<ValidRequest, "promptIds"> {
  prompt: { ids: number[] } | { text: string; bytes: number };
  /** Who it is for ("" for the node's own), checked: a string of at most MAX_OWNER_CHARS. */
  owner: string;
}

const MAX_OWNER_CHARS = 256;

/** What a request is checked against: the engine's limits (kvPositions: a request needing more never runs). */
export interface Limits extends Pick<
  EngineLimits,
  "vocabSize" | "maxSeqLen" | "kvPositions" | "maxTokens" | "maxPromptBytes"
> {
  tokenizer: Tokenizer;
  isRegistered(adapterId: string): boolean;
}

/** Checks sampling values; the same rules hold at every entry point (engine, API, CLI). */
export function checkSampling(params: {
  maxTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
}): SamplingParams {
  if (!Number.isInteger(params.maxTokens) || params.maxTokens < 0)
    throw new InvalidRequestError("max_tokens", `must be a non-negative integer, got ${params.maxTokens}`);
  if (!(params.temperature >= 0) || !Number.isFinite(params.temperature))
    throw new InvalidRequestError("temperature", `must be a finite number >= 0, got ${params.temperature}`);
  const topK = params.topK ?? 0;
  const topP = params.topP ?? 1;
  if (!Number.isInteger(topK) || topK < 0)
    throw new InvalidRequestError("top_k", `must be a non-negative integer, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new InvalidRequestError("top_p", `must be in (0, 1], got ${topP}`);
  return { temperature: params.temperature, topK, topP };
}

/**
 * Checks a request and fills its defaults, all but the prompt's length in tokens (withPrompt checks that): a
 * text prompt is measured in bytes only, so an oversized one costs nothing to refuse. Throws InvalidRequestError
 * naming the field at fault.
 */
export function checkRequest(request: EngineRequest, limits: Limits): CheckedRequest {
  if (typeof request !== "object" || request === null) throw new InvalidRequestError("request", "must be an object");
  const owner = request.owner ?? "";
  if (typeof owner !== "string" || owner.length > MAX_OWNER_CHARS) {
    throw new InvalidRequestError("owner", `must be a string of at most ${MAX_OWNER_CHARS} characters`);
  }
  const { adapterId } = request;
  if (adapterId !== null && adapterId !== undefined) {
    if (!isAdapterId(adapterId))
      throw new InvalidRequestError(
        "adapter",
        `id must be "0x" and 64 lowercase hex digits, got ${JSON.stringify(adapterId)}`,
      );
    if (!limits.isRegistered(adapterId))
      throw new InvalidRequestError("adapter", `${adapterId} is not registered on this node`);
  }
  const params = checkSampling({
    maxTokens: request.maxTokens,
    temperature: request.temperature ?? 1,
    topK: request.topK,
    topP: request.topP,
  });
  if (request.maxTokens > limits.maxTokens)
    throw new InvalidRequestError("max_tokens", `${request.maxTokens} exceeds the limit ${limits.maxTokens}`);
  const seed = request.seed ?? randomInt(2 ** 32);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32)
    throw new InvalidRequestError("seed", `must be an integer in [0, 2^32), got ${seed}`);
  const stop = request.stop ?? [];
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== "string"))
    throw new InvalidRequestError("stop", "must be a list of strings");

  const prompt = promptOf(request, limits);
  const base = {
    adapterId: adapterId ?? null,
    maxTokens: request.maxTokens,
    params,
    seed,
    stop: [...stop],
    ignoreEos: request.ignoreEos === true,
  };
  return { ...base, prompt, owner };
}

/** The request with its prompt as token ids, checked against the context and the KV pool. */
export function withPrompt(checked: CheckedRequest, promptIds: number[], limits: Limits): ValidRequest {
  const { prompt: _prompt, owner: _owner, ...request } = checked;
  if (promptIds.length >= limits.maxSeqLen)
    throw new InvalidRequestError("prompt", `has ${promptIds.length} tokens, the context holds ${limits.maxSeqLen}`);
  const total = promptIds.length + request.maxTokens;
  if (total > limits.maxSeqLen)
    throw new InvalidRequestError(
      "max_tokens",
      `${request.maxTokens} with a prompt of ${promptIds.length} tokens exceeds the context of ${limits.maxSeqLen}`,
    );
  if (total > limits.kvPositions)
    throw new InvalidRequestError(
      "max_tokens",
      `${request.maxTokens} with a prompt of ${promptIds.length} tokens exceeds the KV cache (${limits.kvPositions} positions)`,
    );
  return { ...request, promptIds };
}

function promptOf(request: EngineRequest, limits: Limits): CheckedRequest["prompt"] {
  if (request.tokenIds !== undefined && request.prompt !== undefined)
    throw new InvalidRequestError("prompt", "give either prompt or tokenIds, not both");
  if (request.tokenIds !== undefined) {
    if (!Array.isArray(request.tokenIds)) throw new InvalidRequestError("tokenIds", "must be a list of token ids");
    const bad = request.tokenIds.find((t) => !Number.isInteger(t) || t < 0 || t >= limits.vocabSize);
    if (bad !== undefined)
      throw new InvalidRequestError("tokenIds", `contains ${bad}, outside the vocabulary (0..${limits.vocabSize - 1})`);
    if (request.tokenIds.length === 0) throw new InvalidRequestError("tokenIds", "is empty");
    return { ids: [...request.tokenIds] };
  }
  if (typeof request.prompt !== "string")
    throw new InvalidRequestError("prompt", "must be a string (or give tokenIds)");
  // Measured before tokenizing: a huge prompt is refused in time linear in its length, with no allocation.
  const bytes = Buffer.byteLength(request.prompt, "utf8");
  if (bytes > limits.maxPromptBytes) {
    throw new InvalidRequestError(
      "prompt",
      `has ${bytes} bytes, more than the ${limits.maxPromptBytes} accepted (maxPromptBytes)`,
    );
  }
  return { text: request.prompt, bytes };
}
