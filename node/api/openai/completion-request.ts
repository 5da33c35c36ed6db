// POST /v1/completions: the body read into what the engine is asked. One prompt per request (a string, or a list
// of token ids), as OpenAI's legacy completions endpoint takes it.
import { badParam } from "../errors.ts";
import {
  bodyObject,
  checkFields,
  COMMON_REFUSALS,
  modelField,
  offWhen,
  samplingFields,
  streamFields,
  type SamplingFields,
  type StreamFields,
} from "./request-params.ts";

/** Text (encoded with BOS by the API) or token ids used as given. */
export type PromptInput = { text: string } | { tokenIds: number[] };

export interface CompletionRequest extends SamplingFields, StreamFields {
  model: string;
  prompt: PromptInput;
}

const KNOWN = [
  "model",
  "prompt",
  "max_tokens",
  "temperature",
  "top_p",
  "top_k",
  "seed",
  "stop",
  "stream",
  "stream_options",
  "ignore_eos",
];

const REFUSALS = {
  ...COMMON_REFUSALS,
  logprobs: { off: offWhen.nullish, reason: "logprobs are not returned" },
  echo: { off: offWhen.falsy, reason: "the prompt is not echoed" },
  best_of: { off: offWhen.one, reason: "only best_of = 1 is supported" },
  suffix: { off: (v: unknown) => v === null || v === undefined || v === "", reason: "insertion is not supported" },
};

/** Completions default to 16 tokens, as OpenAI's do. */
export const DEFAULT_COMPLETION_TOKENS = 16;

export function parseCompletionRequest(raw: unknown): CompletionRequest {
  const body = bodyObject(raw);
  checkFields(body, KNOWN, REFUSALS);
  const model = modelField(body);
  const sampling = samplingFields(body, ["max_tokens"]);
  return {
    model,
    prompt: promptField(body.prompt),
    ...sampling,
    maxTokens: sampling.maxTokens ?? DEFAULT_COMPLETION_TOKENS,
    ...streamFields(body),
  };
}

/** A string, a list of token ids, or a list holding one of those (a batch of one). */
function promptField(value: unknown): PromptInput {
  if (value === undefined || value === null) throw badParam("prompt", "is required");
  if (typeof value === "string") return { text: value };
  if (!Array.isArray(value)) throw badParam("prompt", "must be a string or a list of token ids");
  if (value.length > 0 && value.every((t) => typeof t === "number")) {
    if (!value.every((t) => Number.isInteger(t) && t >= 0)) throw badParam("prompt", "token ids must be integers >= 0");
    return { tokenIds: value as number[] };
  }
  if (value.length === 1) return promptField(value[0]);
  if (value.length === 0) throw badParam("prompt", "is an empty list");
  throw badParam("prompt", `holds ${value.length} prompts: this node takes one prompt per request`);
}
