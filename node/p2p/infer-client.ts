// The client side of /openlora/infer/1, for peers and SDK users that speak libp2p. inferStream yields the
// server's events as they arrive; stopping early (break, or the signal) resets the stream, which the server
// takes as a cancellation.
import type { Stream } from "@libp2p/interface";
import type { Usage } from "../engine/runtime/types.ts";
import { deadline, frames, ProtocolError, readJson, writeJson } from "./frames.ts";
import type { P2pHost, PeerAddress } from "./host.ts";
import {
  INFER_PROTOCOL,
  InferError,
  MAX_RESPONSE_FRAME,
  parseResponseFrame,
  type InferEvent,
  type InferRequest,
} from "./infer-frames.ts";

export interface InferOptions {
  signal?: AbortSignal;
  /** Bound on dialling and sending the request. Default 10 s. */
  connectTimeoutMs?: number;
}

export interface InferResult {
  tokenIds: number[];
  text: string;
  usage: Usage;
  /** The peer that served it. */
  peerId: string;
}

/** Streams one request's events from a peer. Throws InferError for the server's refusals. */
export async function* inferStream(
  host: P2pHost,
  peer: PeerAddress,
  request: InferRequest,
  options: InferOptions = {},
): AsyncGenerator<InferEvent> {
  const connectSignal = deadline(options.connectTimeoutMs ?? 10_000, options.signal);
  let stream: Stream | undefined;
  let ended = false;
  try {
    // Optimistic protocol selection: the request travels with the protocol name instead of a round trip later
    // (a peer that lacks the protocol then fails the first read, which the caller's failover handles).
    stream = await host.openStream(peer, INFER_PROTOCOL, { signal: connectSignal, negotiateFully: false });
    const lp = frames(stream, MAX_RESPONSE_FRAME);
    await writeJson(lp, { type: "request", ...request }, { signal: connectSignal });
    for (;;) {
      const frame = parseResponseFrame(await readJson(lp, { signal: options.signal }));
      if (frame.type === "error") throw new InferError(frame.code, `${peer.peerId}: ${frame.message}`);
      yield frame;
      if (frame.type === "usage") {
        ended = true;
        await stream.close().catch(() => {});
        return;
      }
    }
  } catch (error) {
    if (error instanceof ProtocolError)
      throw new InferError("internal", `${peer.peerId} broke the protocol: ${error.message}`);
    throw error;
  } finally {
    // Left before the final frame (break, abort, error): reset, so the server cancels the request.
    if (!ended) stream?.abort(new Error("client stopped reading"));
  }
}

/** Runs one request on a peer to its end. */
export async function infer(
  host: P2pHost,
  peer: PeerAddress,
  request: InferRequest,
  options: InferOptions = {},
): Promise<InferResult> {
  const tokenIds: number[] = [];
  let text = "";
  for await (const event of inferStream(host, peer, request, options)) {
    if (event.type === "token") tokenIds.push(event.tokenId);
    if (event.type === "usage") return { tokenIds, text: event.text, usage: event.usage, peerId: peer.peerId };
    text += event.text;
  }
  throw new InferError("internal", `${peer.peerId} ended without usage (text so far: ${text.length} chars)`);
}
