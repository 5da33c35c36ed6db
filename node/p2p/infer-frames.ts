// The frames of /openlora/infer/1 (length-prefixed JSON):
//   client -> { type: "request", adapterId, prompt | tokenIds, maxTokens, temperature?, topP?, topK?, seed?, stop?, voucher? }
//   server -> { type: "token", tokenId, text }*  ({ type: "text", text })?  then exactly one final frame:
//             { type: "usage", usage, text }  |  { type: "error", code, message }
// The token and text pieces concatenated are the whole generated text, as with the engine's own stream.
import type { EngineRequest, Usage } from "../engine/runtime/types.ts";
import { ProtocolError } from "./frames.ts";
import { OpenLoraError } from "../engine/errors.ts";

export const INFER_PROTOCOL = "/openlora/infer/1";

/** A request as it travels: the engine's request without the AbortSignal, plus an opaque payment field. */
export type InferRequest = Omit<EngineRequest, "signal" | "ignoreEos"> & {
  /** Payment evidence (a signed voucher) for the node's authorize hook; the protocol does not read it. */
  voucher?: unknown;
};

export type InferErrorCode = "invalid_request" | "unauthorized" | "adapter_unavailable" | "busy" | "internal";

export type InferEvent =
  | { type: "token"; tokenId: number; text: string }
  | { type: "text"; text: string }
  | { type: "usage"; usage: Usage; text: string };

export type ResponseFrame = InferEvent | { type: "error"; code: InferErrorCode; message: string };

/** The request frame may not exceed this (prompt text included). */
export const MAX_REQUEST_FRAME = 256 * 1024;
/** A response frame may not exceed this (the usage frame repeats the whole text). */
export const MAX_RESPONSE_FRAME = 1 << 20;

/** A refusal or failure the server reported (or the client detected). */
/** An error a node answers on the infer protocol (its code travels in the error frame). */
export class InferError extends OpenLoraError {
  override name = "InferError";
  declare readonly code: InferErrorCode;

  constructor(code: InferErrorCode, message: string) {
    super(code, message, { blame: code === "invalid_request" || code === "unauthorized" ? "caller" : "node" });
  }
}

const MAX_STOP = 16;
const MAX_TOKEN_IDS = 1 << 16;

/** Shape-checks a request frame (the engine checks the values against the model). */
export function parseRequestFrame(frame: Record<string, unknown>): InferRequest {
  const bad = (why: string): never => {
    throw new InferError("invalid_request", why);
  };
  if (frame.type !== "request") bad(`expected a request frame, got type ${JSON.stringify(frame.type)}`);
  const { adapterId, prompt, tokenIds, maxTokens, temperature, topP, topK, seed, stop } = frame;
  if (adapterId !== null && typeof adapterId !== "string") bad("adapterId must be a string or null");
  if (prompt !== undefined && typeof prompt !== "string") bad("prompt must be a string");
  if (
    tokenIds !== undefined &&
    (!Array.isArray(tokenIds) || tokenIds.length > MAX_TOKEN_IDS || !tokenIds.every(Number.isInteger))
  )
    bad("tokenIds must be an array of integers");
  if ((prompt === undefined) === (tokenIds === undefined)) bad("exactly one of prompt and tokenIds");
  if (!Number.isInteger(maxTokens)) bad("maxTokens must be an integer");
  for (const [name, value] of [
    ["temperature", temperature],
    ["topP", topP],
    ["topK", topK],
    ["seed", seed],
  ] as const) {
    if (value !== undefined && typeof value !== "number") bad(`${name} must be a number`);
  }
  if (
    stop !== undefined &&
    (!Array.isArray(stop) || stop.length > MAX_STOP || !stop.every((s) => typeof s === "string" && s.length <= 256))
  )
    bad(`stop must be at most ${MAX_STOP} strings`);
  return {
    adapterId: adapterId as string | null,
    ...(prompt !== undefined ? { prompt: prompt as string } : { tokenIds: tokenIds as number[] }),
    maxTokens: maxTokens as number,
    ...(temperature !== undefined ? { temperature: temperature as number } : {}),
    ...(topP !== undefined ? { topP: topP as number } : {}),
    ...(topK !== undefined ? { topK: topK as number } : {}),
    ...(seed !== undefined ? { seed: seed as number } : {}),
    ...(stop !== undefined ? { stop: stop as string[] } : {}),
    ...(frame.voucher !== undefined ? { voucher: frame.voucher } : {}),
  };
}

/** The engine request for a parsed frame. */
export function toEngineRequest(request: InferRequest, signal: AbortSignal): EngineRequest {
  const { voucher: _voucher, ...rest } = request;
  return { ...rest, signal };
}

/** Shape-checks a response frame on the client side. */
export function parseResponseFrame(frame: Record<string, unknown>): ResponseFrame {
  switch (frame.type) {
    case "token":
      if (Number.isInteger(frame.tokenId) && typeof frame.text === "string") return frame as ResponseFrame;
      break;
    case "text":
      if (typeof frame.text === "string") return frame as ResponseFrame;
      break;
    case "usage": {
      const u = frame.usage as Record<string, unknown> | null;
      if (
        typeof frame.text === "string" &&
        typeof u === "object" &&
        u !== null &&
        Number.isInteger(u.promptTokens) &&
        Number.isInteger(u.completionTokens) &&
        typeof u.finishReason === "string"
      ) {
        return frame as ResponseFrame;
      }
      break;
    }
    case "error":
      if (typeof frame.code === "string" && typeof frame.message === "string") return frame as ResponseFrame;
      break;
  }
  throw new ProtocolError(`bad response frame ${JSON.stringify(frame).slice(0, 200)}`);
}
