// The request fields that /v1/completions and /v1/chat/completions share, read and checked the way OpenAI's API
// reads them: a wrong type or range is a 400 naming the field; a feature the node does not have (logprobs,
// penalties, n > 1, tools...) is refused by name rather than silently ignored; an unknown field is refused too.
import { badParam } from "../errors.ts";

/** What a request asks the engine for, in the engine's terms; null maxTokens: as many as the context allows. */
export interface SamplingFields {
  maxTokens: number | null;
  temperature: number | undefined;
  topP: number | undefined;
  topK: number | undefined;
  seed: number | undefined;
  stop: string[];
  /** Extension (as vLLM's): keep generating past EOS, up to max_tokens (benchmarks, load tests). */
  ignoreEos: boolean;
}

export interface StreamFields {
  stream: boolean;
  /** stream_options.include_usage: one more chunk with the usage before [DONE]. */
  includeUsage: boolean;
}

export type Body = Record<string, unknown>;

/** Fields accepted and not acted on (they change nothing here). */
const IGNORED = new Set(["user", "metadata", "store", "service_tier"]);

/** A field with the value that means "feature off"; any other value is refused with the reason. */
export interface Refusal {
  off: (value: unknown) => boolean;
  reason: string;
}

const isNullish = (v: unknown): boolean => v === null || v === undefined;
export const offWhen = {
  nullish: isNullish,
  falsy: (v: unknown) => isNullish(v) || v === false || v === 0,
  zero: (v: unknown) => isNullish(v) || v === 0,
  one: (v: unknown) => isNullish(v) || v === 1,
  empty: (v: unknown) => isNullish(v) || (Array.isArray(v) && v.length === 0) || isEmptyObject(v),
};

/** Refused by both endpoints unless off. */
export const COMMON_REFUSALS: Record<string, Refusal> = {
  n: { off: offWhen.one, reason: "only n = 1 is supported" },
  presence_penalty: { off: offWhen.zero, reason: "penalties are not supported" },
  frequency_penalty: { off: offWhen.zero, reason: "penalties are not supported" },
  logit_bias: { off: offWhen.empty, reason: "logit_bias is not supported" },
};

/** The body as an object; anything else (an array, a string, null) is a 400. */
export function bodyObject(body: unknown): Body {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badParam("body", "must be a JSON object");
  }
  return body as Body;
}

/**
 * Checks that every field is known: one the endpoint reads (`known`), one that changes nothing, or one refused
 * while it is off (`refusals`).
 */
export function checkFields(body: Body, known: readonly string[], refusals: Record<string, Refusal>): void {
  for (const [name, value] of Object.entries(body)) {
    const refusal = refusals[name];
    if (refusal) {
      if (!refusal.off(value)) throw badParam(name, `is not supported by this node: ${refusal.reason}`);
      continue;
    }
    if (!known.includes(name) && !IGNORED.has(name)) throw badParam(name, "is not a recognized request argument");
  }
}

export function modelField(body: Body): string {
  const model = body.model;
  if (model === undefined || model === null) throw badParam("model", "is required");
  if (typeof model !== "string" || model.length === 0) throw badParam("model", "must be a non-empty string");
  return model;
}

/** max_tokens (chat also takes max_completion_tokens, which wins). */
export function samplingFields(body: Body, maxTokensFields: readonly string[]): SamplingFields {
  let maxTokens: number | null = null;
  for (const name of maxTokensFields) {
    const v = optionalNumber(body, name);
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 1) throw badParam(name, `must be an integer >= 1, got ${v}`);
    maxTokens = v;
  }
  const temperature = optionalNumber(body, "temperature");
  if (temperature !== undefined && !(temperature >= 0 && temperature <= 2)) {
    throw badParam("temperature", `must be between 0 and 2, got ${temperature}`);
  }
  const topP = optionalNumber(body, "top_p");
  if (topP !== undefined && !(topP > 0 && topP <= 1)) throw badParam("top_p", `must be in (0, 1], got ${topP}`);
  const topK = optionalNumber(body, "top_k");
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 0)) {
    throw badParam("top_k", `must be an integer >= 0, got ${topK}`);
  }
  const seed = optionalNumber(body, "seed");
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) {
    throw badParam("seed", `must be an integer in [0, 2^32), got ${seed}`);
  }
  const ignoreEos = body.ignore_eos;
  if (!isNullish(ignoreEos) && typeof ignoreEos !== "boolean") throw badParam("ignore_eos", "must be a boolean");
  return { maxTokens, temperature, topP, topK, seed, stop: stopField(body.stop), ignoreEos: ignoreEos === true };
}

export function streamFields(body: Body): StreamFields {
  const stream = body.stream;
  if (!isNullish(stream) && typeof stream !== "boolean") throw badParam("stream", "must be a boolean");
  const options = body.stream_options;
  if (isNullish(options)) return { stream: stream === true, includeUsage: false };
  if (stream !== true) throw badParam("stream_options", "is only allowed when stream is true");
  if (typeof options !== "object" || Array.isArray(options)) throw badParam("stream_options", "must be an object");
  const include = (options as Body).include_usage;
  if (!isNullish(include) && typeof include !== "boolean") {
    throw badParam("stream_options.include_usage", "must be a boolean");
  }
  return { stream: true, includeUsage: include === true };
}

/** OpenAI allows up to 4 stop strings, as a string or a list. */
function stopField(value: unknown): string[] {
  if (isNullish(value)) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) {
    throw badParam("stop", "must be a string or a list of strings");
  }
  if (list.length > 4) throw badParam("stop", `takes at most 4 strings, got ${list.length}`);
  return (list as string[]).filter((s) => s.length > 0);
}

function optionalNumber(body: Body, name: string): number | undefined {
  const v = body[name];
  if (isNullish(v)) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) throw badParam(name, `must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function isEmptyObject(v: unknown): boolean {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
}
