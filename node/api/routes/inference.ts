// POST /v1/completions and /v1/chat/completions: a request read and checked, its model resolved (fetched from a
// peer when the node lacks the adapter), its payment authorized, then run by the engine and answered whole or as
// Server-Sent Events. A client that goes away cancels its request in the engine at once. Every request that ran
// is recorded in the ledger (one atomic batch) and logged as one line.
import { randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Hex } from "viem";
import type { AdapterId, Completion, EngineRequest, RequestStream, Usage } from "../../engine/index.ts";
import { AdapterUnavailableError } from "../../p2p/index.ts";
import type { ApiContext, PaidOutcome, PaymentHold } from "../context.ts";
import { ApiError, badParam, errorResponse } from "../errors.ts";
import { errorFields } from "../log.ts";
import { parseChatRequest, type ChatRequest } from "../openai/chat-request.ts";
import { parseCompletionRequest, type CompletionRequest } from "../openai/completion-request.ts";
import {
  chunkBody,
  completionBody,
  finishReason,
  openAiUsage,
  type Endpoint,
  type ResponseContext,
} from "../openai/responses.ts";
import { SseWriter } from "../sse.ts";

export const VOUCHER_HEADER = "x-openlora-voucher";

const SHUTTING_DOWN = new ApiError(503, "shutting_down", "the node is shutting down; retry on another node", {
  blame: "node",
});

/** Requests these routes logged themselves (the server's generic log line skips them). */
export const selfLogged = new WeakSet<FastifyRequest>();

export function inferenceRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post("/v1/completions", (request, reply) =>
    serve(ctx, request, reply, "completion", parseCompletionRequest(request.body)),
  );
  app.post("/v1/chat/completions", (request, reply) =>
    serve(ctx, request, reply, "chat", parseChatRequest(request.body)),
  );
}

/** What one request carries through its life, for its ledger record and its log line. */
interface Run {
  id: string;
  route: string;
  answer: ResponseContext;
  adapterId: AdapterId | null;
  receivedAt: number;
  submittedAt: number;
  started: number;
  stream: boolean;
  hold: PaymentHold | null;
}

async function serve(
  ctx: ApiContext,
  request: FastifyRequest,
  reply: FastifyReply,
  endpoint: Endpoint,
  parsed: CompletionRequest | ChatRequest,
): Promise<void> {
  const started = performance.now();
  const receivedAt = Date.now();
  const id = `${endpoint === "chat" ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`;
  const abort = new AbortController();
  // A client gone before the answer is complete cancels whatever its request is doing (fetch, queue, decode).
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) abort.abort(new Error("client disconnected"));
  });
  ctx.inflight.add(abort);
  let hold: PaymentHold | null = null;
  try {
    const model = resolveModel(ctx, parsed.model);
    const { adapterId } = model;
    const promptIds = await promptIdsOf(ctx, parsed);
    const maxTokens = parsed.maxTokens ?? chatDefaultMaxTokens(ctx, promptIds.length);
    const voucher = request.headers[VOUCHER_HEADER];
    if (Array.isArray(voucher)) throw new ApiError(400, "voucher_invalid", `send one ${VOUCHER_HEADER} header`);
    hold = ctx.payment
      ? await ctx.payment.authorize({ voucher, adapterId, maxTokens: promptIds.length + maxTokens })
      : null;
    // Fetched only once paid for (a request nobody pays for never makes the node download), for the listing paid.
    if (model.missing) await fetchAdapter(ctx, parsed.model, model.adapterId, hold?.listingId, abort.signal);
    const engineRequest: EngineRequest = {
      adapterId,
      tokenIds: promptIds,
      maxTokens,
      temperature: parsed.temperature,
      topP: parsed.topP,
      topK: parsed.topK,
      seed: parsed.seed,
      stop: "messages" in parsed ? [...parsed.stop, ...ctx.chatTemplate.stop] : parsed.stop,
      ignoreEos: parsed.ignoreEos,
      // A payer holds at most its share of the engine's work (free requests share the node's own).
      owner: hold?.payer.toLowerCase(),
      signal: abort.signal,
    };
    const submittedAt = Date.now();
    const stream = ctx.engine.submit(engineRequest);
    if (adapterId !== null) ctx.metrics.adapterLookup(adapterId);
    const run: Run = {
      id,
      route: endpoint === "chat" ? "/v1/chat/completions" : "/v1/completions",
      answer: { endpoint, id, created: Math.floor(receivedAt / 1000), model: parsed.model },
      adapterId,
      receivedAt,
      submittedAt,
      started,
      stream: parsed.stream,
      hold,
    };
    hold = null; // from here the run owns it: finish() charges, a failure releases
    selfLogged.add(request);
    if (parsed.stream) await streamAnswer(ctx, reply, run, stream, parsed.includeUsage);
    else await wholeAnswer(ctx, reply, run, stream);
  } catch (error) {
    hold?.release();
    throw error;
  } finally {
    ctx.inflight.delete(abort);
  }
}

/**
 * The adapter `model` names (null: the base model); `missing` when the node lacks it and can fetch it from its
 * peers. 404 when it names nothing, or an adapter the node lacks with no network to fetch it from.
 */
function resolveModel(
  ctx: ApiContext,
  model: string,
): { adapterId: null; missing: false } | { adapterId: AdapterId; missing: boolean } {
  const resolved = ctx.catalog.require(model);
  if (resolved.adapterId === null) return { adapterId: null, missing: false };
  if (resolved.registered) return { adapterId: resolved.adapterId, missing: false };
  if (!ctx.peers)
    throw new ApiError(404, "model_not_found", `The model '${model}' is not on this node`, { param: "model" });
  return { adapterId: resolved.adapterId, missing: true };
}

/** Fetches an adapter the node lacks from a peer (for the listing a voucher pays, when paid); 404 when none can. */
async function fetchAdapter(
  ctx: ApiContext,
  model: string,
  adapterId: AdapterId,
  listingId: Hex | undefined,
  signal: AbortSignal,
): Promise<void> {
  try {
    await ctx.peers!.ensureAdapter(adapterId, { signal, listingId });
  } catch (error) {
    if (error instanceof AdapterUnavailableError) {
      const message = `The model '${model}' is not on this node and no peer could supply it: ${error.message}`;
      throw new ApiError(404, "model_not_found", message, { param: "model" });
    }
    throw error;
  }
}

/** Text prompts over this many bytes are tokenized in slices, between other requests' work (as the engine does). */
const SLICED_PROMPT_BYTES = 4096;

/**
 * The prompt as token ids (the API needs the count before the engine runs: a paid request's cost): chat messages
 * through the chat template, text with BOS, token ids as given. Text is held to the engine's byte bound before it
 * is tokenized, and a long one is tokenized in slices, so a big prompt never holds the event loop.
 */
async function promptIdsOf(ctx: ApiContext, parsed: CompletionRequest | ChatRequest): Promise<number[]> {
  if ("messages" in parsed) return encodeText(ctx, ctx.chatTemplate.render(parsed.messages), "messages");
  const { prompt } = parsed;
  return "text" in prompt ? encodeText(ctx, prompt.text, "prompt") : prompt.tokenIds;
}

async function encodeText(ctx: ApiContext, text: string, param: string): Promise<number[]> {
  const bytes = Buffer.byteLength(text, "utf8");
  const limit = ctx.engine.limits.maxPromptBytes;
  if (bytes > limit) throw badParam(param, `is ${bytes} bytes of prompt text; this node takes at most ${limit}`);
  const { tokenizer } = ctx;
  if (bytes > SLICED_PROMPT_BYTES && tokenizer.encodeAsync) return tokenizer.encodeAsync(text, { bos: true });
  return tokenizer.encode(text, { bos: true });
}

/** Chat without max_tokens may fill the context (OpenAI's default), within the engine's limits. */
function chatDefaultMaxTokens(ctx: ApiContext, promptTokens: number): number {
  const { maxSeqLen, kvPositions, maxTokens } = ctx.engine.limits;
  return Math.max(1, Math.min(maxTokens, maxSeqLen - promptTokens, kvPositions - promptTokens));
}

async function wholeAnswer(ctx: ApiContext, reply: FastifyReply, run: Run, stream: RequestStream): Promise<void> {
  let completion: Completion;
  try {
    completion = await stream.result;
  } catch (error) {
    run.hold?.release();
    finishLog(ctx, run, errorResponse(error).status, null, error);
    throw error;
  }
  let record: (() => void) | null = null;
  const paid = await account(ctx, run, completion.usage, (write) => (record = write));
  const cancelled = completion.usage.finishReason === "cancelled";
  const gone = reply.raw.destroyed;
  finishLog(ctx, run, cancelled ? (gone ? 499 : 503) : 200, completion.usage, undefined, paid);
  if (record) setImmediate(record);
  if (gone) return void reply.hijack(); // nobody is listening: nothing to send
  if (cancelled) throw SHUTTING_DOWN; // cancelled with the client still there: the node is stopping
  reply.header("x-request-id", run.id);
  await reply.send(completionBody(run.answer, completion.text, completion.usage, paid?.answer));
}

async function streamAnswer(
  ctx: ApiContext,
  reply: FastifyReply,
  run: Run,
  stream: RequestStream,
  includeUsage: boolean,
): Promise<void> {
  reply.hijack();
  const sse = new SseWriter(reply.raw, { "x-request-id": run.id });
  const chunk = (part: Parameters<typeof chunkBody>[1]) => chunkBody(run.answer, part, includeUsage);
  try {
    if (run.answer.endpoint === "chat") await sse.send(chunk({ role: true, text: "" }));
    for await (const event of stream) {
      if (event.type === "usage") break;
      if (event.text) await sse.send(chunk({ text: event.text }));
    }
  } catch (error) {
    // The engine failed the request (a client that left ends its stream as "cancelled", not here).
    run.hold?.release();
    const { status, body } = errorResponse(error);
    finishLog(ctx, run, status, null, error);
    await sse.send(body);
    sse.end();
    return;
  }
  const { usage } = await stream.result;
  let record: (() => void) | null = null;
  const paid = await account(ctx, run, usage, (write) => (record = write));
  const cancelled = usage.finishReason === "cancelled";
  finishLog(ctx, run, sse.closed ? 499 : cancelled ? 503 : 200, usage, undefined, paid);
  if (cancelled) {
    // Cancelled with the client still there: the node is stopping. Say so instead of a silent cut.
    await sse.send(errorResponse(SHUTTING_DOWN).body);
  } else {
    const receipt = paid?.answer;
    await sse.send(chunk({ finish: finishReason(usage.finishReason), receipt: includeUsage ? undefined : receipt }));
    if (includeUsage) await sse.send(chunk({ usage: openAiUsage(usage), receipt }));
    await sse.send("[DONE]");
  }
  sse.end();
  if (record) setImmediate(record);
}

/**
 * Charges a finished request (paid mode) and records it in the ledger. A paid request's record (its voucher is
 * what settlement claims) is written before the answer ends. A free one's is written once the answer is out
 * (`later` runs after the response is handed to the socket): the ledger writes in order and close() waits for
 * every write started, so a stop loses none.
 */
async function account(
  ctx: ApiContext,
  run: Run,
  usage: Usage,
  later: (write: () => void) => void,
): Promise<PaidOutcome | null> {
  const paid = run.hold ? await run.hold.finish(run.id, usage) : null;
  const finishedAt = Date.now();
  const write = (): Promise<unknown> =>
    ctx.ledger
      .recordRequest({
        id: run.id,
        adapter: run.adapterId,
        listingId: paid?.listingId ?? null,
        payer: paid?.payer ?? null,
        node: paid?.node ?? null,
        usage: { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens },
        cost: paid?.cost ?? 0n,
        voucher: paid?.voucher ?? null,
        receipt: paid?.receipt ?? null,
        timings: {
          receivedAt: run.receivedAt,
          firstTokenAt: usage.completionTokens > 0 ? Math.round(run.submittedAt + usage.timings.ttftMs) : null,
          finishedAt,
        },
        finishReason: usage.finishReason,
      })
      .catch((error: unknown) => ctx.log.log("error", "ledger_write_failed", { id: run.id, ...errorFields(error) }));
  if (paid) {
    await write();
  } else {
    // Readers of the ledger (GET /v1/usage) wait for these, so an answered request is always counted.
    const written = new Promise<unknown>((resolve) => later(() => void write().then(resolve)));
    ctx.ledgerWrites.add(written);
    void written.then(() => ctx.ledgerWrites.delete(written));
  }
  return paid;
}

/** The request's one log line, and its metrics. */
function finishLog(
  ctx: ApiContext,
  run: Run,
  status: number,
  usage: Usage | null,
  error?: unknown,
  paid?: PaidOutcome | null,
): void {
  const seconds = (performance.now() - run.started) / 1000;
  ctx.metrics.request(run.route, status, seconds);
  ctx.log.log(status >= 500 ? "error" : "info", "request", {
    id: run.id,
    route: run.route,
    status,
    model: run.answer.model,
    adapter: run.adapterId,
    stream: run.stream,
    ms: Math.round(seconds * 1e6) / 1e3,
    ...(usage && {
      prompt_tokens: usage.promptTokens,
      completion_tokens: usage.completionTokens,
      finish_reason: usage.finishReason,
      queue_ms: round(usage.timings.queueMs),
      ttft_ms: round(usage.timings.ttftMs),
      engine_ms: round(usage.timings.totalMs),
    }),
    ...(paid && { payer: paid.payer, listing: paid.listingId, cost: paid.cost.toString() }),
    ...(error !== undefined && errorFields(error)),
  });
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
