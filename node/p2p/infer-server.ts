// The serving side of /openlora/infer/1: one request per stream, handed to the engine, its events streamed back
// as frames. When the stream closes before the request ends (the client went away, reset the stream, or the
// connection dropped), the request is aborted in the engine at once, which frees its KV blocks and adapter pin.
import type { Stream } from "@libp2p/interface";
import { EngineBusyError, OpenLoraError } from "../engine/errors.ts";
import type { EngineEvent, EngineRequest, Usage } from "../engine/runtime/types.ts";
import { deadline, frames, readJson, writeJson } from "./frames.ts";
import type { P2pHost } from "./host.ts";
import {
  INFER_PROTOCOL,
  InferError,
  MAX_REQUEST_FRAME,
  type InferErrorCode,
  MAX_RESPONSE_FRAME,
  parseRequestFrame,
  toEngineRequest,
  type InferRequest,
  type ResponseFrame,
} from "./infer-frames.ts";

/** What serves the requests: the Engine fits as it is. */
export interface InferenceService {
  submit(request: EngineRequest): AsyncIterable<EngineEvent>;
}

export interface InferContext {
  /** The client's peer id (authenticated by noise). */
  peerId: string;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

export interface ServeInferenceOptions {
  /** Time a client has to send its request frame. Default 10 s. */
  requestTimeoutMs?: number;
  /** Concurrent request streams per connection. Default 32. */
  maxInboundStreams?: number;
  /** Refuse (throw InferError "unauthorized") a request that is not paid for; runs before anything else. */
  authorize?: (request: InferRequest, context: InferContext) => Promise<void>;
  /** Runs after authorize, before the engine: e.g. fetch a missing adapter from peers. */
  prepare?: (request: InferRequest, context: InferContext) => Promise<void>;
  /** Called once a request ended with usage (also a cancelled one): the ledger records it. */
  onFinished?: (request: InferRequest, usage: Usage, context: InferContext) => void;
}

export async function serveInference(
  host: P2pHost,
  service: InferenceService,
  options: ServeInferenceOptions = {},
): Promise<void> {
  await host.handle(
    INFER_PROTOCOL,
    (stream, connection) => {
      serveOne(stream, connection.remotePeer.toString(), service, options).catch((error) =>
        stream.abort(error as Error),
      );
    },
    { maxInboundStreams: options.maxInboundStreams ?? 32 },
  );
}

async function serveOne(
  stream: Stream,
  peerId: string,
  service: InferenceService,
  options: ServeInferenceOptions,
): Promise<void> {
  const gone = new AbortController();
  const cancel = new AbortController(); // what the engine sees: the client left, or we could not write to it
  let finished = false;
  // 'close' fires once the stream can carry nothing more: before we finished, the client is gone.
  stream.addEventListener(
    "close",
    () => {
      if (finished) return;
      gone.abort(new Error("client closed the stream"));
      cancel.abort(gone.signal.reason);
    },
    { once: true },
  );
  const lp = frames(stream, MAX_REQUEST_FRAME);
  const send = async (frame: ResponseFrame): Promise<void> => {
    const bytes = new TextEncoder().encode(JSON.stringify(frame));
    if (bytes.length > MAX_RESPONSE_FRAME) throw new InferError("internal", `response frame of ${bytes.length} bytes`);
    await lp.write(bytes);
  };
  const context: InferContext = { peerId, signal: gone.signal };
  try {
    const request = parseRequestFrame(
      await readJson(lp, { signal: deadline(options.requestTimeoutMs ?? 10_000, gone.signal) }),
    );
    await options.authorize?.(request, context);
    await options.prepare?.(request, context);
    gone.signal.throwIfAborted();
    let sending = true;
    // Read the engine's stream to its end even after the client left: the usage of a cancelled request still
    // reaches onFinished (the tokens were computed), and the engine ends it at once.
    // The client's peer id owns the request: the engine bounds each owner's share of its queue and batch.
    for await (const event of service.submit({ ...toEngineRequest(request, cancel.signal), owner: peerId })) {
      if (event.type === "usage") options.onFinished?.(request, event.usage, context);
      if (!sending || gone.signal.aborted) continue;
      try {
        await send(event);
      } catch {
        sending = false;
        cancel.abort(new Error("could not write to the client"));
      }
    }
  } catch (error) {
    if (gone.signal.aborted) return; // the stream is gone: nothing to tell
    finished = true;
    // Our own errors say whose fault they were: the caller's (or a broken frame) is an invalid request.
    const known = error instanceof OpenLoraError;
    const code: InferErrorCode =
      error instanceof InferError
        ? error.code
        : error instanceof EngineBusyError
          ? "busy"
          : known && error.blame !== "node"
            ? "invalid_request"
            : "internal";
    const message = known ? error.message : `request failed: ${(error as Error).message}`;
    await send({ type: "error", code, message }).catch(() => {});
    await stream.close().catch(() => {});
    return;
  } finally {
    cancel.abort(new Error("request over")); // a no-op for a request that ended; stops one that did not
  }
  finished = true;
  await stream.close().catch(() => {});
}
