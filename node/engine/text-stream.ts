import type { Tokenizer } from "./tokenizer/tokenizer.ts";

/** Why a generation ended on its own (the engine adds "cancelled"). */
export type FinishReason = "stop" | "length" | "eos";

/** What one sampled token did to the text. */
export interface TextStep {
  /** Text that became final with this token ("" while a UTF-8 sequence or a possible stop prefix is held back). */
  piece: string;
  /** Set when generation must end: "eos" (the token is not kept), "stop" (the text ends before the stop string). */
  finish: "eos" | "stop" | null;
}

/**
 * The text side of one generation, shared by generate() and the serving engine: EOS detection, stop strings
 * and incremental, UTF-8-safe text. Feed it every sampled token in order; it keeps the generated ids.
 */
export class TextStream {
  readonly tokenIds: number[] = [];
  #tokenizer: Tokenizer;
  #promptIds: readonly number[];
  #promptText: string;
  #stops: readonly string[];
  #ignoreEos: boolean;
  #text = "";
  #emitted = 0;

  constructor(tokenizer: Tokenizer, promptIds: readonly number[], stops: readonly string[] = [], options: { ignoreEos?: boolean } = {}) {
    this.#tokenizer = tokenizer;
    this.#promptIds = promptIds;
    this.#promptText = tokenizer.decode(promptIds);
    this.#stops = stops.filter((s) => s.length > 0);
    this.#ignoreEos = options.ignoreEos ?? false;
  }

  /** The generated text so far (cut before a stop string once one was found). */
  get text(): string {
    return this.#text;
  }

  /** Takes one sampled token. */
  push(token: number): TextStep {
    if (!this.#ignoreEos && (token === this.#tokenizer.eosId || token === this.#tokenizer.bosId)) return { piece: "", finish: "eos" };
    this.tokenIds.push(token);
    this.#text = this.#tokenizer.decode([...this.#promptIds, ...this.tokenIds]).slice(this.#promptText.length);
    const stopAt = firstStop(this.#text, this.#stops);
    if (stopAt >= 0) {
      this.#text = this.#text.slice(0, stopAt);
      return { piece: "", finish: "stop" };
    }
    // Hold back a trailing replacement character (an incomplete UTF-8 byte sequence) and a possible stop prefix.
    const safe = safeLength(this.#text, this.#stops);
    if (safe <= this.#emitted) return { piece: "", finish: null };
    const piece = this.#text.slice(this.#emitted, safe);
    this.#emitted = safe;
    return { piece, finish: null };
  }

  /** At the end of generation: the text still held back. */
  flush(): string {
    const rest = this.#text.slice(this.#emitted);
    this.#emitted = this.#text.length;
    return rest;
  }
}

function firstStop(text: string, stops: readonly string[]): number {
  let first = -1;
  for (const stop of stops) {
    const at = text.indexOf(stop);
    if (at >= 0 && (first < 0 || at < first)) first = at;
  }
  return first;
}

function safeLength(text: string, stops: readonly string[]): number {
  let safe = text.endsWith("\uFFFD") ? text.length - 1 : text.length;
  for (const stop of stops) {
    for (let n = Math.min(stop.length - 1, safe); n > 0; n--) {
      if (text.slice(safe - n, safe) === stop.slice(0, n)) {
        safe -= n;
        break;
      }
    }
  }
  return safe;
}
