// POST /v1/chat/completions: the body read into messages and sampling fields. Content is text (a string, or a
// list of text parts); images, audio and tool calls are refused by name.
import { CHAT_ROLES, type ChatMessage, type ChatRole } from "../../engine/index.ts";
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

export interface ChatRequest extends SamplingFields, StreamFields {
  model: string;
  messages: ChatMessage[];
}

const KNOWN = [
  "model",
  "messages",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "top_k",
  "seed",
  "stop",
  "stream",
  "stream_options",
  "ignore_eos",
];

const noTools = { off: offWhen.empty, reason: "tools and function calls are not supported" };
const REFUSALS = {
  ...COMMON_REFUSALS,
  logprobs: { off: offWhen.falsy, reason: "logprobs are not returned" },
  top_logprobs: { off: offWhen.zero, reason: "logprobs are not returned" },
  tools: noTools,
  functions: noTools,
  tool_choice: { off: (v: unknown) => v === null || v === undefined || v === "none", reason: noTools.reason },
  function_call: { off: (v: unknown) => v === null || v === undefined || v === "none", reason: noTools.reason },
  parallel_tool_calls: { off: () => true, reason: "" },
  response_format: {
    off: (v: unknown) => v === null || v === undefined || (v as { type?: unknown }).type === "text",
    reason: "only text responses are supported",
  },
  modalities: {
    off: (v: unknown) => v === null || v === undefined || (Array.isArray(v) && v.every((m) => m === "text")),
    reason: "only text is supported",
  },
  audio: { off: offWhen.nullish, reason: "audio is not supported" },
  prediction: { off: offWhen.nullish, reason: "predicted outputs are not supported" },
  reasoning_effort: { off: offWhen.nullish, reason: "this model does not reason" },
};

export function parseChatRequest(raw: unknown): ChatRequest {
  const body = bodyObject(raw);
  checkFields(body, KNOWN, REFUSALS);
  return {
    model: modelField(body),
    messages: messagesField(body.messages),
    ...samplingFields(body, ["max_tokens", "max_completion_tokens"]),
    ...streamFields(body),
  };
}

function messagesField(value: unknown): ChatMessage[] {
  if (value === undefined || value === null) throw badParam("messages", "is required");
  if (!Array.isArray(value) || value.length === 0) throw badParam("messages", "must be a non-empty list");
  return value.map((m, i) => message(m, `messages[${i}]`));
}

function message(value: unknown, at: string): ChatMessage {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw badParam(at, "must be an object");
  const { role, content, name, tool_calls: toolCalls } = value as Record<string, unknown>;
  if (typeof role !== "string" || !(CHAT_ROLES as readonly string[]).includes(role)) {
    throw badParam(`${at}.role`, `must be one of ${CHAT_ROLES.join(", ")}, got ${JSON.stringify(role)}`);
  }
  if (toolCalls !== undefined && toolCalls !== null) throw badParam(`${at}.tool_calls`, "is not supported");
  if (name !== undefined && typeof name !== "string") throw badParam(`${at}.name`, "must be a string");
  const out: ChatMessage = { role: role as ChatRole, content: contentText(content, `${at}.content`) };
  if (typeof name === "string") out.name = name;
  return out;
}

/** A string, or text parts joined (OpenAI's content parts; an assistant turn may have null content). */
function contentText(value: unknown, at: string): string {
  if (value === null) return "";
  if (typeof value === "string") return value;
  if (!Array.isArray(value)) throw badParam(at, "must be a string or a list of text parts");
  return value
    .map((part, i) => {
      const { type, text } = (part ?? {}) as Record<string, unknown>;
      if (type !== "text")
        throw badParam(`${at}[${i}].type`, `only "text" parts are supported, got ${JSON.stringify(type)}`);
      if (typeof text !== "string") throw badParam(`${at}[${i}].text`, "must be a string");
      return text;
    })
    .join("");
}
