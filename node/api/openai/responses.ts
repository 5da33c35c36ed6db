// The objects OpenAI's API answers with, field for field: completions and chat completions, whole and as
// streamed chunks, and the usage record. `receipt` is the node's own addition (paid requests only).
import type { EngineFinishReason, Usage } from "../../engine/index.ts";

export type Endpoint = "completion" | "chat";

export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** What every object of one request shares. */
export interface ResponseContext {
  endpoint: Endpoint;
  /** "cmpl-..." or "chatcmpl-...": also the request's id in the ledger and the logs. */
  id: string;
  /** Unix seconds. */
  created: number;
  /** The model as the client named it. */
  model: string;
}

export function openAiUsage(usage: Pick<Usage, "promptTokens" | "completionTokens">): OpenAiUsage {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

/** OpenAI says "stop" for a natural end (EOS or a stop string) and "length" for max_tokens or the context. */
export function finishReason(reason: EngineFinishReason): "stop" | "length" {
  return reason === "length" ? "length" : "stop";
}

function envelope(ctx: ResponseContext, chunk: boolean) {
  const object = ctx.endpoint === "chat" ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return { id: ctx.id, object, created: ctx.created, model: ctx.model, system_fingerprint: null };
}

/** The whole answer of a request that was not streamed. */
export function completionBody(
  ctx: ResponseContext,
  text: string,
  usage: Usage,
  receipt: unknown,
): Record<string, unknown> {
  const finish = finishReason(usage.finishReason);
  const choice =
    ctx.endpoint === "chat"
      ? {
          index: 0,
          message: { role: "assistant", content: text, refusal: null },
          logprobs: null,
          finish_reason: finish,
        }
      : { text, index: 0, logprobs: null, finish_reason: finish };
  const body: Record<string, unknown> = { ...envelope(ctx, false), choices: [choice], usage: openAiUsage(usage) };
  if (receipt !== undefined) body.receipt = receipt;
  return body;
}

/**
 * One streamed chunk. Text chunks carry a piece of text; the finishing chunk an empty delta and the reason; the
 * usage chunk no choices. With include_usage every other chunk carries `usage: null`, as OpenAI's do.
 */
export function chunkBody(
  ctx: ResponseContext,
  part: { text?: string; role?: boolean; finish?: "stop" | "length"; usage?: OpenAiUsage; receipt?: unknown },
  includeUsage: boolean,
): Record<string, unknown> {
  const body: Record<string, unknown> = envelope(ctx, true);
  if (part.usage) {
    body.choices = [];
  } else if (ctx.endpoint === "chat") {
    const delta: Record<string, unknown> = {};
    if (part.role) delta.role = "assistant";
    if (part.text !== undefined) delta.content = part.text;
    body.choices = [{ index: 0, delta, logprobs: null, finish_reason: part.finish ?? null }];
  } else {
    body.choices = [{ text: part.text ?? "", index: 0, logprobs: null, finish_reason: part.finish ?? null }];
  }
  if (includeUsage) body.usage = part.usage ?? null;
  if (part.receipt !== undefined) body.receipt = part.receipt;
  return body;
}
