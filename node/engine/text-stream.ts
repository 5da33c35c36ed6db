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

const REPLACEMENT = "\uFFFD";

/**
 * The text side of one generation, shared by generate() and the serving engine: EOS detection, stop strings
 * and incremental, UTF-8-safe text. Feed it every sampled token in order; it keeps the generated ids.
 *
 * The text is decode(prompt + generated) without the prompt's text, computed incrementally so a token costs
 * O(1), not O(length): each step decodes a window that starts at the tokens of the last committed piece (so a
 * decoder's context, like SentencePiece's leading space or a cleanup rule, is seen) and takes what the window
 * adds; while the window ends in an incomplete UTF-8 sequence (U+FFFD) it grows instead of committing.
 */
export class TextStream {
  readonly tokenIds: number[] = [];
  #tokenizer: Tokenizer;
  #all: number[];
  #stops: readonly string[];
  #longestStop: number;
  #ignoreEos: boolean;
  /** Decode window: ids [#prefix, end); text of ids [#prefix, #read) is #prefixText and is already in #text. */
  #prefix = 0;
  #read: number;
  #prefixText: string;
  #promptText: string;
  /** False once a decoder was seen to rewrite earlier text (then every step decodes the whole sequence). */
  #windowed = true;
  /** Committed text, and what the growing window adds beyond it (ends with U+FFFD, or ""). */
  #text = "";
  #pending = "";
  /** Characters of the full text already searched for stop strings, and already emitted. */
  #searched = 0;
  #emitted = 0;

  constructor(
    tokenizer: Tokenizer,
    promptIds: readonly number[],
    stops: readonly string[] = [],
    options: { ignoreEos?: boolean } = {},
  ) {
    this.#tokenizer = tokenizer;
    this.#all = [...promptIds];
    this.#read = promptIds.length;
    this.#promptText = tokenizer.decode(promptIds);
    this.#prefixText = this.#promptText;
    this.#stops = stops.filter((s) => s.length > 0);
    this.#longestStop = Math.max(0, ...this.#stops.map((s) => s.length));
    this.#ignoreEos = options.ignoreEos ?? false;
  }

  /** The generated text so far (cut before a stop string once one was found). */
  get text(): string {
    return this.#text + this.#pending;
  }

  /** Takes one sampled token. */
  push(token: number): TextStep {
    const ends = this.#tokenizer.eosIds.includes(token) || token === this.#tokenizer.bosId; // Llama 3: <|eot_id|> too
    if (!this.#ignoreEos && ends) return { piece: "", finish: "eos" };
    this.tokenIds.push(token);
    this.#all.push(token);
    if (this.#windowed) {
      const window = this.#tokenizer.decode(this.#all.slice(this.#prefix));
      if (window.startsWith(this.#prefixText)) {
        const added = window.slice(this.#prefixText.length);
        if (added.length > 0 && !added.endsWith(REPLACEMENT)) {
          this.#text += added;
          this.#pending = "";
          this.#prefix = this.#read;
          this.#read = this.#all.length;
          this.#prefixText = this.#tokenizer.decode(this.#all.slice(this.#prefix, this.#read));
        } else {
          this.#pending = added;
        }
      } else {
        this.#windowed = false; // the decoder rewrote earlier text: decode the whole sequence from now on
      }
    }
    if (!this.#windowed) {
      this.#text = this.#tokenizer.decode(this.#all).slice(this.#promptText.length);
      this.#pending = "";
    }

    const full = this.text;
    const from = Math.max(0, this.#searched - this.#longestStop + 1);
    const stopAt = firstStop(full, this.#stops, from);
    if (stopAt >= 0) {
      this.#text = full.slice(0, stopAt);
      this.#pending = "";
      return { piece: "", finish: "stop" };
    }
    this.#searched = full.endsWith(REPLACEMENT) ? full.length - 1 : full.length;
    // Hold back a trailing replacement character (an incomplete UTF-8 byte sequence) and a possible stop prefix.
    const safe = safeLength(full, this.#stops);
    if (safe <= this.#emitted) return { piece: "", finish: null };
    const piece = full.slice(this.#emitted, safe);
    this.#emitted = safe;
    return { piece, finish: null };
  }

  /** At the end of generation: the text still held back. */
  flush(): string {
    const full = this.text;
    const rest = full.slice(this.#emitted);
    this.#emitted = full.length;
    return rest;
  }
}

function firstStop(text: string, stops: readonly string[], from: number): number {
  let first = -1;
  for (const stop of stops) {
    const at = text.indexOf(stop, from);
    if (at >= 0 && (first < 0 || at < first)) first = at;
  }
  return first;
}

function safeLength(text: string, stops: readonly string[]): number {
  let safe = text.endsWith(REPLACEMENT) ? text.length - 1 : text.length;
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
