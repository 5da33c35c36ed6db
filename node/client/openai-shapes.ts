// OpenAI's objects as the client sees them: streamed chunks from a node, the whole answer assembled from them
// (the client always streams from nodes, so that "before the first token" is well defined for failover), and
// the error body an OpenAI-compatible caller expects.

export type Endpoint = "completion" | "chat";

/** One streamed chunk as the node sends it (OpenAI's shape, plus `receipt` on the last one of a paid request). */
export type Chunk = Record<string, unknown>;

export const ENDPOINT_PATHS: Record<Endpoint, string> = {
  completion: "/v1/completions",
  chat: "/v1/chat/completions",
};

interface ChoiceChunk {
  text?: unknown;
  delta?: { content?: unknown };
  finish_reason?: unknown;
}

function firstChoice(chunk: Chunk): ChoiceChunk | undefined {
  return Array.isArray(chunk.choices) ? (chunk.choices[0] as ChoiceChunk | undefined) : undefined;
}

/** The text a chunk adds (completion or chat). */
export function chunkText(chunk: Chunk): string {
  const choice = firstChoice(chunk);
  const text = choice?.delta ? choice.delta.content : choice?.text;
  return typeof text === "string" ? text : "";
}

/**
 * Whether a chunk commits the answer: it adds text, finishes it, or carries the usage. Before such a chunk (a chat
 * answer's opening role chunk) nothing of the answer has reached the caller and another node may still serve it.
 */
export function commitsAnswer(chunk: Chunk): boolean {
  const choice = firstChoice(chunk);
  if (!choice) return true; // the usage chunk
  return chunkText(chunk) !== "" || (choice.finish_reason !== null && choice.finish_reason !== undefined);
}

/** The whole answer of a request, from its chunks, as OpenAI answers a request that was not streamed. */
export function assembleCompletion(endpoint: Endpoint, chunks: Chunk[], model: string): Chunk {
  const text = chunks.map(chunkText).join("");
  let finish: unknown = null;
  let usage: unknown = undefined;
  let receipt: unknown = undefined;
  for (const c of chunks) {
    const reason = firstChoice(c)?.finish_reason;
    if (reason !== null && reason !== undefined) finish = reason;
    if (c.usage) usage = c.usage;
    if (c.receipt !== undefined) receipt = c.receipt;
  }
  const first = chunks[0] ?? {};
  const choice =
    endpoint === "chat"
      ? {
          index: 0,
          message: { role: "assistant", content: text, refusal: null },
          logprobs: null,
          finish_reason: finish,
        }
      : { text, index: 0, logprobs: null, finish_reason: finish };
  const body: Chunk = {
    id: first.id,
    object: endpoint === "chat" ? "chat.completion" : "text_completion",
    created: first.created,
    model,
    system_fingerprint: null,
    choices: [choice],
  };
  if (usage !== undefined) body.usage = usage;
  if (receipt !== undefined) body.receipt = receipt;
  return body;
}

/** OpenAI's error body. */
export function errorBody(status: number, code: string, message: string, extra: Record<string, unknown> = {}): Chunk {
  const type =
    status === 402
      ? "payment_required"
      : status === 404
        ? "not_found_error"
        : status === 429
          ? "rate_limit_error"
          : status >= 500
            ? "server_error"
            : "invalid_request_error";
  return { error: { message, type, param: null, code, ...extra } };
}
