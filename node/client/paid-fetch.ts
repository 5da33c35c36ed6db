// A fetch that pays: OpenAI's completion and chat routes are answered by routing, paying and verifying through
// the client; GET .../models lists the adapters the network announces. The official `openai` client takes it as
// `new OpenAI({ baseURL, apiKey, fetch })` (the base URL's host is never contacted), and the gateway serves it on
// a local port. Errors come back in OpenAI's shape and status, so OpenAI clients raise their usual errors.
import { NoRouteError } from "../p2p/index.ts";
import { OpenLoraError } from "../engine/index.ts";
import { NoDepositError, NodeAttemptError, ReceiptError, SpendingLimitError, UnknownModelError } from "./errors.ts";
import { assembleCompletion, errorBody, type Chunk, type Endpoint } from "./openai-shapes.ts";
import { sseLine } from "./sse.ts";
import type { Announcement } from "../p2p/index.ts";

/** What paidFetch needs of the client. */
export interface StreamingClient {
  stream(endpoint: Endpoint, body: Record<string, unknown>, options: { signal?: AbortSignal }): AsyncIterable<Chunk>;
  discovery: { announcements(): Promise<Announcement[]> };
}

export function paidFetch(client: StreamingClient): typeof fetch {
  return async (input, init) => {
    const request = new Request(input, init);
    const path = new URL(request.url).pathname.replace(/\/+$/, "");
    if (request.method === "POST" && path.endsWith("/completions")) {
      let body: unknown;
      try {
        body = await request.json();
      } catch {
        return json(400, errorBody(400, "invalid_json", "the request body is not JSON"));
      }
      if (typeof body !== "object" || body === null || Array.isArray(body)) {
        return json(400, errorBody(400, "invalid_request", "the request body must be a JSON object"));
      }
      const endpoint: Endpoint = path.endsWith("/chat/completions") ? "chat" : "completion";
      return answer(client, endpoint, body as Record<string, unknown>, request.signal);
    }
    if (request.method === "GET" && path.endsWith("/models")) return json(200, await modelList(client));
    return json(
      404,
      errorBody(
        404,
        "not_found",
        `${request.method} ${path} is not served here (completions, chat/completions, models)`,
      ),
    );
  };
}

async function answer(
  client: StreamingClient,
  endpoint: Endpoint,
  body: Record<string, unknown>,
  signal: AbortSignal,
): Promise<Response> {
  const chunks = client.stream(endpoint, body, { signal })[Symbol.asyncIterator]();
  // The status is decided by the first chunk: until then, every failure is a proper error answer.
  let first: IteratorResult<Chunk>;
  try {
    first = await chunks.next();
  } catch (error) {
    return errorResponse(error);
  }
  if (body.stream !== true) {
    const all = first.done ? [] : [first.value];
    try {
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) all.push(next.value);
    } catch (error) {
      return errorResponse(error);
    }
    return json(200, assembleCompletion(endpoint, all, String(body.model)));
  }
  const encoder = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      if (!first.done) controller.enqueue(encoder.encode(sseLine(first.value)));
    },
    async pull(controller) {
      try {
        const next = await chunks.next();
        if (!next.done) return controller.enqueue(encoder.encode(sseLine(next.value)));
        controller.enqueue(encoder.encode(sseLine("[DONE]")));
      } catch (error) {
        // After the first chunk the status is sent: the failure ends the stream as an error event, as OpenAI does.
        controller.enqueue(encoder.encode(sseLine(errorOf(error).body)));
      }
      controller.close();
    },
    async cancel() {
      await chunks.return?.(undefined);
    },
  });
  return new Response(stream, {
    status: 200,
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" },
  });
}

/** The adapters the network announces now, as OpenAI's model list (id: the content hash). */
async function modelList(client: StreamingClient): Promise<Chunk> {
  const seen = new Map<string, number>();
  for (const a of await client.discovery.announcements()) {
    for (const adapter of a.adapters) seen.set(adapter.id, (seen.get(adapter.id) ?? 0) + 1);
  }
  const data = [...seen]
    .sort()
    .map(([id, nodes]) => ({ id, object: "model", created: 0, owned_by: "openlora", nodes }));
  return { object: "list", data };
}

/** A failure as OpenAI's status and body. */
export function errorOf(error: unknown): { status: number; body: Chunk } {
  if (error instanceof NodeAttemptError && error.blame === "caller" && error.status !== null) {
    return { status: error.status, body: (error.body as Chunk) ?? errorBody(error.status, error.code, error.message) };
  }
  if (error instanceof UnknownModelError) return { status: 404, body: errorBody(404, error.code, error.message) };
  if (error instanceof NoDepositError) {
    return { status: 402, body: errorBody(402, error.code, error.message, { nodes: error.nodes }) };
  }
  if (error instanceof SpendingLimitError) {
    return {
      status: 402,
      body: errorBody(402, error.code, error.message, {
        limit: error.limit,
        wanted: error.wanted.toString(),
        allowed: error.allowed.toString(),
      }),
    };
  }
  if (error instanceof ReceiptError) {
    return {
      status: 502,
      body: errorBody(502, error.code, error.message, { node: error.node, receipt: error.evidence }),
    };
  }
  if (error instanceof NoRouteError) return { status: 503, body: errorBody(503, error.code, error.message) };
  if (error instanceof OpenLoraError && error.blame === "caller") {
    return { status: 400, body: errorBody(400, error.code, error.message) };
  }
  const code = error instanceof OpenLoraError ? error.code : "client_error";
  return { status: 500, body: errorBody(500, code, (error as Error)?.message ?? String(error)) };
}

function errorResponse(error: unknown): Response {
  const { status, body } = errorOf(error);
  // A payment refused, a limit reached or a receipt disputed is not cured by sending the same request again.
  const retry = status === 503 || status === 500 ? "true" : "false";
  return json(status, body, { "x-should-retry": retry });
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}
