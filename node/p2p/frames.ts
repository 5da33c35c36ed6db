// Length-prefixed JSON frames over a libp2p stream (both stream protocols speak them). Every read has a size
// bound, enforced by lpStream before the bytes are buffered, and a time bound through the caller's signal.
import type { AbortOptions, Stream } from "@libp2p/interface";
import { lpStream, type LengthPrefixedStream } from "@libp2p/utils";
import { OpenLoraError } from "../engine/errors.ts";

export type FrameStream = LengthPrefixedStream<Stream>;
/** A frame as the list of buffers it arrived in (@libp2p/utils' Uint8ArrayList: iterable, byteLength). */
export type FrameList = Awaited<ReturnType<FrameStream["read"]>>;

/** A malformed or oversized frame, or a peer that broke the protocol. */
/** A peer broke a protocol (oversized, malformed or missing frames). */
export class ProtocolError extends OpenLoraError {
  override name = "ProtocolError";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("protocol", message, { blame: "peer", ...options });
  }
}

/**
 * Wraps a stream for frames of at most `maxFrameBytes`; `maxBufferBytes` bounds what may be buffered unread
 * (yamux may deliver up to its window ahead of the reader).
 */
export function frames(
  stream: Stream,
  maxFrameBytes: number,
  maxBufferBytes = Math.max(4 << 20, 2 * maxFrameBytes),
): FrameStream {
  return lpStream(stream, { maxDataLength: maxFrameBytes, maxBufferSize: maxBufferBytes });
}

export async function writeJson(lp: FrameStream, value: unknown, options?: AbortOptions): Promise<void> {
  await lp.write(new TextEncoder().encode(JSON.stringify(value)), options);
}

/** Reads one frame as a JSON object; throws ProtocolError when it is not one. */
export async function readJson(lp: FrameStream, options?: AbortOptions): Promise<Record<string, unknown>> {
  const bytes = await readFrame(lp, options);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new ProtocolError(`frame is not UTF-8 JSON: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new ProtocolError("frame is not a JSON object");
  return value as Record<string, unknown>;
}

/** Reads one frame's bytes; size violations become ProtocolError. */
export async function readFrame(lp: FrameStream, options?: AbortOptions): Promise<Uint8Array> {
  return (await readFrameList(lp, options)).subarray();
}

/** What @libp2p/utils throws for a peer that sends more than a read may hold: the peer's fault, not the network's. */
const PEER_OVERRUN = new Set([
  "InvalidDataLengthError",
  "InvalidDataLengthLengthError",
  "InvalidMessageLengthError",
  "StreamBufferError",
]);

/**
 * Reads one frame as the list of buffers it arrived in (no copy to join them: large frames). An oversized frame
 * or a flood past the read buffer ("Read buffer overflow") is a ProtocolError (blame peer), so the peer is
 * penalized like any other protocol breaker instead of being counted as a network failure.
 */
export async function readFrameList(lp: FrameStream, options?: AbortOptions): Promise<FrameList> {
  try {
    return await lp.read(options);
  } catch (error) {
    const name = (error as Error).name;
    if (PEER_OVERRUN.has(name)) {
      throw new ProtocolError((error as Error).message);
    }
    throw error;
  }
}

/** An AbortSignal that fires after `ms` or when `parent` does. */
export function deadline(ms: number, parent?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return parent ? AbortSignal.any([parent, timeout]) : timeout;
}
