// Chat messages into one prompt: the model's own chat template (Jinja, as Hugging Face ships it in
// tokenizer_config.json, or GGUF's tokenizer.chat_template), rendered with @huggingface/jinja; or, for a model
// without one (stories260K), the plain template documented at PLAIN_CHAT_TEMPLATE.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { InvalidRequestError, ModelFormatError } from "../errors.ts";
import { GgufReader, ggufArray, ggufNumber, ggufString } from "../formats/gguf-read.ts";
import type { LoadedModel } from "../model/weights.ts";
import type { Tokenizer } from "./tokenizer.ts";

export const CHAT_ROLES = ["system", "developer", "user", "assistant", "tool"] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface ChatMessage {
  role: ChatRole;
  content: string;
  name?: string;
}

export interface ChatTemplate {
  /** "model": the model's own template; "plain": PLAIN_CHAT_TEMPLATE. */
  kind: "model" | "plain";
  /** Stop strings every chat request adds: the plain template's next-turn marker (a model's own EOS ends a turn). */
  stop: readonly string[];
  /**
   * The prompt for the assistant's next turn (add_generation_prompt), to be encoded as a text prompt: without the
   * template's leading BOS when the tokenizer puts BOS in front of every prompt itself, so there is exactly one
   * (transformers' apply_chat_template tokenizes without adding special tokens). Special tokens the template
   * writes (<|im_start|>, <start_of_turn>, ...) stay text; the tokenizer turns them into their ids.
   */
  render(messages: readonly ChatMessage[]): string;
}

/**
 * The fallback for models without a chat template. System (and developer) messages are written as they are,
 * each followed by a blank line; user, assistant and tool turns as "User: ", "Assistant: ", "Tool: " and the
 * content, each followed by a blank line; the prompt ends with "Assistant:" for the reply, and a reply stops
 * before "\nUser:". For [{system: "Be brief."}, {user: "Hi"}] the prompt is "Be brief.\n\nUser: Hi\n\nAssistant:".
 */
export const PLAIN_CHAT_TEMPLATE: ChatTemplate = {
  kind: "plain",
  stop: ["\nUser:"],
  render(messages) {
    const label: Record<ChatRole, string> = {
      system: "",
      developer: "",
      user: "User: ",
      assistant: "Assistant: ",
      tool: "Tool: ",
    };
    return messages.map((m) => `${label[m.role]}${m.content}\n\n`).join("") + "Assistant:";
  },
};

/** The special token texts a template may use. */
export interface TemplateTokens {
  bosToken: string;
  eosToken: string;
  /** Whether the prompt's tokenizer adds BOS itself (default true): then a leading bos_token is dropped. */
  tokenizerAddsBos?: boolean;
}

/** A Jinja chat template; throws ModelFormatError (naming `source`) when it does not parse. */
export function jinjaChatTemplate(text: string, tokens: TemplateTokens, source: string): ChatTemplate {
  let template: Template;
  try {
    template = new Template(text);
  } catch (error) {
    throw new ModelFormatError(source, `chat_template does not parse: ${(error as Error).message}`);
  }
  return {
    kind: "model",
    stop: [],
    render(messages) {
      let rendered: string;
      try {
        rendered = template.render({
          messages: messages.map((m) => ({ ...m })),
          add_generation_prompt: true,
          bos_token: tokens.bosToken,
          eos_token: tokens.eosToken,
        });
      } catch (error) {
        // Templates refuse conversations they cannot format (raise_exception: roles that do not alternate, ...).
        const reason = (error as Error).message;
        throw new InvalidRequestError("messages", `cannot be formatted by the model's chat template: ${reason}`);
      }
      // The tokenizer puts BOS in front of a text prompt (Llama, Gemma, Mistral): drop the template's own so there
      // is one. A tokenizer that adds none (Qwen) keeps what the template wrote.
      const strip = (tokens.tokenizerAddsBos ?? true) && tokens.bosToken !== "" && rendered.startsWith(tokens.bosToken);
      return strip ? rendered.slice(tokens.bosToken.length) : rendered;
    },
  };
}

/**
 * The model's chat template (Hugging Face tokenizer_config.json, GGUF metadata), or the plain one. Given the
 * model's tokenizer, a template's BOS is kept where that tokenizer adds none.
 */
export function chatTemplateOf(
  model: Pick<LoadedModel, "format" | "source"> & { tokenizer?: Tokenizer },
): ChatTemplate {
  const tokenizerAddsBos = model.tokenizer ? model.tokenizer.encode("", { bos: true }).length > 0 : true;
  if (model.format === "safetensors") return hfChatTemplate(model.source, tokenizerAddsBos) ?? PLAIN_CHAT_TEMPLATE;
  if (model.format === "gguf") return ggufChatTemplate(model.source, tokenizerAddsBos) ?? PLAIN_CHAT_TEMPLATE;
  return PLAIN_CHAT_TEMPLATE;
}

function hfChatTemplate(folder: string, tokenizerAddsBos: boolean): ChatTemplate | null {
  const path = join(folder, "tokenizer_config.json");
  if (!existsSync(path)) return null;
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (error) {
    throw new ModelFormatError(path, `not valid JSON (${(error as Error).message})`);
  }
  const text = pickTemplate(config.chat_template, path);
  if (text === null) return null;
  return jinjaChatTemplate(
    text,
    { bosToken: tokenText(config.bos_token), eosToken: tokenText(config.eos_token), tokenizerAddsBos },
    path,
  );
}

function ggufChatTemplate(file: string, tokenizerAddsBos: boolean): ChatTemplate | null {
  const reader = GgufReader.open(file);
  try {
    const text = ggufString(reader, "tokenizer.chat_template");
    if (text === undefined) return null;
    const tokens = ggufArray(reader, "tokenizer.ggml.tokens") ?? [];
    const textOf = (key: string): string => {
      const id = ggufNumber(reader, key);
      const token = id === undefined ? undefined : tokens[id];
      return typeof token === "string" ? token : "";
    };
    const specials = {
      bosToken: textOf("tokenizer.ggml.bos_token_id"),
      eosToken: textOf("tokenizer.ggml.eos_token_id"),
      tokenizerAddsBos,
    };
    return jinjaChatTemplate(text, specials, file);
  } finally {
    reader.close();
  }
}

/** chat_template is a string, or a list of named templates of which "default" is the chat one. */
function pickTemplate(value: unknown, path: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => (t as { name?: unknown })?.name === "default") as
      { template?: unknown } | undefined;
    if (typeof named?.template === "string") return named.template;
  }
  throw new ModelFormatError(path, 'chat_template must be a string or a list with a "default" template');
}

/** A special token as tokenizer_config.json writes it: a string or an AddedToken object. */
function tokenText(value: unknown): string {
  if (typeof value === "string") return value;
  const content = (value as { content?: unknown } | null | undefined)?.content;
  return typeof content === "string" ? content : "";
}
