// SentencePiece BPE as llama2.c runs it: the tokenizer of stories260K (tok512.bin) and of GGUF "llama" models.
import { readFileSync } from "node:fs";
import { setImmediate as nextTurn } from "node:timers/promises";
import { ModelFormatError } from "../errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** llama.cpp's token types, the values of GGUF's tokenizer.ggml.token_type. */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/**
 * A SentencePiece vocabulary as GGUF stores it: pieces use U+2581 ("▁") for spaces, one score and one type per
 * piece. It is what the GGUF writer puts in the metadata and what random models generate.
 */
export interface SentencePieceVocab {
  pieces: string[];
  scores: number[];
  types: number[];
  bosId: number;
  eosId: number;
  unkId: number;
}

const SPACE_MARK = "\u2581";
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
/** llama2.c starts its search at -1e10 with a strict >, so pieces scoring that low never merge. */
const NO_MERGE_SCORE = -1e10;
/** What SentencePiece prints for <unk>. */
const UNKNOWN_TEXT = " \u2047 ";
/** Characters encodeAsync merges per turn of the event loop (5-40 ms of work on a shared core). */
const SLICE_CHARS = 512;

/** What a GGUF says about a SentencePiece tokenizer beyond its vocabulary. */
export interface SentencePieceOptions {
  /** tokenizer.ggml.add_space_prefix: a "▁" before the text and after each special token (default true; Gemma false). */
  addSpacePrefix?: boolean;
  /** Every id that ends a generation besides eosId (llama.cpp's end-of-generation tokens). */
  eosIds?: readonly number[];
}

/**
 * Greedy best-score BPE, exactly llama2.c's encode(): a dummy-prefix space before non-empty text, one symbol per
 * code point (or its UTF-8 bytes as byte-fallback tokens when the code point is not a piece), then repeatedly
 * merge the adjacent pair whose concatenation is the piece with the highest score, leftmost on ties.
 * llama2.c rescans the whole sequence per merge (quadratic); this keeps candidate pairs in a heap ordered by
 * (score desc, left position asc), which picks the same pair every step. The texts of control and user-defined
 * tokens written in the text (a chat template's <start_of_turn>) become those tokens, and the text between
 * them is encoded as above, each part with its dummy prefix: llama.cpp's tokenize with parse_special, and
 * what Hugging Face's tokenizer does with added tokens.
 */
export class SentencePieceBpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly eosIds: readonly number[];
  readonly unkId: number;
  readonly addSpacePrefix: boolean;
  /** Where the vocabulary came from, for error messages. */
  readonly source: string;
  /** Piece text with real spaces (llama2.c's form). */
  private readonly texts: string[];
  private readonly scores: Float64Array;
  private readonly types: Uint8Array;
  /** Text to id for pieces that encoding may produce (normal and user-defined); first id wins on duplicates. */
  private readonly lookup = new Map<string, number>();
  /** Byte value to its <0xNN> token, -1 when the vocabulary lacks it. */
  private readonly byteIds = new Int32Array(256).fill(-1);
  /** UTF-8 bytes each id decodes to. */
  private readonly bytesOf: Uint8Array[];
  /**
   * No piece has a space right after another character, so no merge joins a word to the space before the next
   * one: text cut just before such a space encodes slice by slice to exactly the ids of the whole (encodeAsync).
   * True of SentencePiece vocabularies trained with whitespace splitting (its default), stories260K's included.
   */
  private readonly slicesAtSpaces: boolean;
  /** Special token texts, longest first, and their ids; null when the vocabulary has none. */
  private readonly specials: { pattern: RegExp; ids: Map<string, number> } | null;

  constructor(vocab: SentencePieceVocab, source: string, options: SentencePieceOptions = {}) {
    const n = vocab.pieces.length;
    if (n === 0) throw new ModelFormatError(source, "tokenizer has no tokens");
    if (vocab.scores.length !== n)
      throw new ModelFormatError(source, `tokenizer has ${n} tokens but ${vocab.scores.length} scores`);
    if (vocab.types.length !== n)
      throw new ModelFormatError(source, `tokenizer has ${n} tokens but ${vocab.types.length} token types`);
    for (const [label, id] of [
      ["bos", vocab.bosId],
      ["eos", vocab.eosId],
      ["unk", vocab.unkId],
    ] as const) {
      if (!Number.isInteger(id) || id < 0 || id >= n)
        throw new ModelFormatError(source, `tokenizer ${label} id ${id} outside the ${n} tokens`);
    }
    this.source = source;
    this.vocabSize = n;
    this.bosId = vocab.bosId;
    this.eosId = vocab.eosId;
    this.eosIds = [...new Set([vocab.eosId, ...(options.eosIds ?? [])])];
    this.unkId = vocab.unkId;
    this.addSpacePrefix = options.addSpacePrefix ?? true;
    this.texts = vocab.pieces.map((p) => p.replaceAll(SPACE_MARK, " "));
    this.scores = Float64Array.from(vocab.scores);
    this.types = Uint8Array.from(vocab.types);
    const encoder = new TextEncoder();
    this.bytesOf = new Array<Uint8Array>(n);
    for (let id = 0; id < n; id++) {
      const type = this.types[id];
      const text = this.texts[id];
      const byteMatch = type === TOKEN_TYPE.byte ? BYTE_PIECE.exec(vocab.pieces[id]) : null;
      if (type === TOKEN_TYPE.byte) {
        if (!byteMatch)
          throw new ModelFormatError(
            source,
            `token ${id} has type byte but piece ${JSON.stringify(vocab.pieces[id])} is not <0xNN>`,
          );
        const value = parseInt(byteMatch[1], 16);
        if (this.byteIds[value] < 0) this.byteIds[value] = id;
        this.bytesOf[id] = Uint8Array.of(value);
      } else if (type === TOKEN_TYPE.control || type === TOKEN_TYPE.unused) {
        this.bytesOf[id] = new Uint8Array(0); // <s>, </s> and padding print nothing
      } else if (type === TOKEN_TYPE.unknown) {
        this.bytesOf[id] = encoder.encode(UNKNOWN_TEXT);
      } else {
        this.bytesOf[id] = encoder.encode(text);
        if (!this.lookup.has(text)) this.lookup.set(text, id);
      }
    }
    this.slicesAtSpaces = ![...this.lookup.keys()].some((text) => /[^ ] /.test(text));
    const specialIds = new Map<string, number>();
    vocab.pieces.forEach((piece, id) => {
      const type = this.types[id];
      if ((type === TOKEN_TYPE.control || type === TOKEN_TYPE.userDefined) && piece !== "" && !specialIds.has(piece))
        specialIds.set(piece, id);
    });
    const alternatives = [...specialIds.keys()]
      .sort((a, b) => b.length - a.length)
      .map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    this.specials =
      alternatives.length > 0 ? { pattern: new RegExp(alternatives.join("|"), "g"), ids: specialIds } : null;
  }

  encode(text: string, options?: { bos?: boolean }): number[] {
    const out: number[] = options?.bos ? [this.bosId] : [];
    if (text.length === 0) return out;
    let afterSpecial = true; // the start of the text counts as after a special token: it gets the dummy prefix
    const encodePart = (part: string): void => {
      if (part.length === 0) return;
      for (const id of this.merge(this.initialSymbols(part, this.addSpacePrefix && afterSpecial))) out.push(id);
      afterSpecial = false;
    };
    let at = 0;
    for (const match of this.specials ? text.matchAll(this.specials.pattern) : []) {
      encodePart(text.slice(at, match.index));
      out.push(this.specials!.ids.get(match[0])!);
      afterSpecial = true;
      at = match.index + match[0].length;
    }
    encodePart(text.slice(at));
    return out;
  }

  async encodeAsync(text: string, options?: { bos?: boolean }): Promise<number[]> {
    const hasSpecial = this.specials !== null && text.search(this.specials.pattern) >= 0;
    if (text.length <= SLICE_CHARS || !this.slicesAtSpaces || hasSpecial) return this.encode(text, options);
    const out: number[] = options?.bos ? [this.bosId] : [];
    for (let start = 0; start < text.length;) {
      const end = sliceEnd(text, start + SLICE_CHARS);
      for (const id of this.merge(this.initialSymbols(text.slice(start, end), this.addSpacePrefix && start === 0)))
        out.push(id);
      start = end;
      if (start < text.length) await nextTurn();
    }
    return out;
  }

  decode(ids: readonly number[]): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    let afterBos = false;
    for (const id of ids) {
      if (id === this.bosId) {
        afterBos = true; // SentencePiece drops BOS and the dummy-prefix space after it (llama2.c decode())
        continue;
      }
      let bytes = id >= 0 && id < this.vocabSize && Number.isInteger(id) ? this.bytesOf[id] : this.bytesOf[this.unkId];
      if (afterBos && this.addSpacePrefix && bytes.length > 0 && bytes[0] === 0x20 && this.isTextPiece(id))
        bytes = bytes.subarray(1);
      afterBos = false;
      parts.push(bytes);
      total += bytes.length;
    }
    const joined = new Uint8Array(total);
    let at = 0;
    for (const part of parts) {
      joined.set(part, at);
      at += part.length;
    }
    // Non-fatal decoding: byte-fallback tokens that do not form valid UTF-8 become U+FFFD.
    return new TextDecoder("utf-8").decode(joined);
  }

  /** The vocabulary in GGUF form (U+2581 for spaces), for writing it into a GGUF file. */
  vocab(): SentencePieceVocab {
    return {
      pieces: this.texts.map((t, id) => (this.isTextPiece(id) ? t.replaceAll(" ", SPACE_MARK) : t)),
      scores: Array.from(this.scores),
      types: Array.from(this.types),
      bosId: this.bosId,
      eosId: this.eosId,
      unkId: this.unkId,
    };
  }

  /** The text of one piece with real spaces ("<0x0A>" for byte tokens), for debugging and tests. */
  piece(id: number): string {
    return this.texts[id];
  }

  private isTextPiece(id: number): boolean {
    const type = this.types[id];
    return type === TOKEN_TYPE.normal || type === TOKEN_TYPE.userDefined;
  }

  /** The dummy prefix (first slice only), then one symbol per code point or its UTF-8 bytes via byte fallback. */
  private initialSymbols(text: string, dummyPrefix = true): number[] {
    const symbols: number[] = [];
    const encoder = new TextEncoder();
    const push = (ch: string): void => {
      const id = this.lookup.get(ch);
      if (id !== undefined) {
        symbols.push(id);
        return;
      }
      for (const byte of encoder.encode(ch)) {
        const byteId = this.byteIds[byte];
        symbols.push(byteId >= 0 ? byteId : this.unkId);
      }
    };
    if (dummyPrefix) push(" ");
    for (const ch of text) push(ch); // for..of walks code points, as llama2.c's UTF-8 grouping does
    return symbols;
  }

  /** The merge loop over a doubly linked list of symbols and a heap of candidate pairs. */
  private merge(initial: number[]): number[] {
    const n = initial.length;
    const id = Int32Array.from(initial);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new PairHeap();
    const consider = (left: number): void => {
      const right = next[left];
      if (right < 0) return;
      const a = id[left];
      const b = id[right];
      if (!this.isTextPiece(a) || !this.isTextPiece(b)) return; // byte and control tokens never merge
      const merged = this.lookup.get(this.texts[a] + this.texts[b]);
      if (merged === undefined || !(this.scores[merged] > NO_MERGE_SCORE)) return;
      heap.push({ score: this.scores[merged], left, right, leftId: a, rightId: b, merged });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    for (let top = heap.pop(); top; top = heap.pop()) {
      const { left, right } = top;
      // Stale entries: a side was merged away or changed since the pair was queued.
      if (id[left] !== top.leftId || id[right] !== top.rightId || next[left] !== right) continue;
      id[left] = top.merged;
      id[right] = -1;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      if (prev[left] >= 0) consider(prev[left]);
      consider(left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(id[i]);
    return out;
  }
}

/** The first index at or after `from` where a space follows a non-space (a cut merges never cross), or the end. */
function sliceEnd(text: string, from: number): number {
  for (let i = Math.max(from, 1); i < text.length; i++) if (text[i] === " " && text[i - 1] !== " ") return i;
  return text.length;
}

interface PairCandidate {
  score: number;
  left: number;
  right: number;
  leftId: number;
  rightId: number;
  merged: number;
}

/** Binary max-heap on score, then min on left position: llama2.c's "best score, first index" rule. */
class PairHeap {
  private readonly items: PairCandidate[] = [];

  private before(a: PairCandidate, b: PairCandidate): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(item: PairCandidate): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): PairCandidate | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < items.length && this.before(items[l], items[best])) best = l;
        if (r < items.length && this.before(items[r], items[best])) best = r;
        if (best === i) break;
        [items[i], items[best]] = [items[best], items[i]];
        i = best;
      }
    }
    return top;
  }
}

/**
 * Token types for a vocabulary that does not store them (llama2.c's tok*.bin): unk, BOS and EOS by id,
 * <0xNN> pieces as bytes, everything else normal.
 */
export function inferTokenTypes(
  pieces: readonly string[],
  ids: { bosId: number; eosId: number; unkId: number },
): number[] {
  return pieces.map((piece, id) => {
    if (id === ids.unkId) return TOKEN_TYPE.unknown;
    if (id === ids.bosId || id === ids.eosId) return TOKEN_TYPE.control;
    if (BYTE_PIECE.test(piece)) return TOKEN_TYPE.byte;
    return TOKEN_TYPE.normal;
  });
}

/** A tokenizer from a vocabulary (GGUF metadata, a random model). `source` names the file in errors. */
export function sentencePieceTokenizer(
  vocab: SentencePieceVocab,
  source: string,
  options: SentencePieceOptions = {},
): SentencePieceBpeTokenizer {
  return new SentencePieceBpeTokenizer(vocab, source, options);
}

/**
 * llama2.c's tokenizer file: int32 max_token_length, then per token float32 score, int32 byte length, bytes.
 * The file does not store the token count (llama2.c takes it from the model); when vocabSize is given the file
 * must hold exactly that many tokens, otherwise all tokens up to the end are read. Ids are llama2.c's fixed
 * ones: <unk> 0, BOS 1, EOS 2. Pieces use real spaces, and BOS/EOS are stored as "\n<s>\n" / "\n</s>\n";
 * they are brought to SentencePiece form ("▁", "<s>", "</s>") so that this vocabulary equals a GGUF's.
 */
export function readLlama2cTokenizer(file: string, vocabSize?: number): SentencePieceBpeTokenizer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new ModelFormatError(
      file,
      `cannot read tokenizer: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4)
    throw new ModelFormatError(file, `truncated tokenizer: ${bytes.length} bytes, no max_token_length`);
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) {
    throw new ModelFormatError(file, `not a llama2.c tokenizer: max_token_length ${maxTokenLength}`);
  }
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const pieces: string[] = [];
  const scores: number[] = [];
  let at = 4;
  while (at < bytes.length && (vocabSize === undefined || pieces.length < vocabSize)) {
    const id = pieces.length;
    if (at + 8 > bytes.length)
      throw new ModelFormatError(file, `truncated tokenizer: token ${id} header cut at byte ${at}`);
    const score = view.getFloat32(at, true);
    const length = view.getInt32(at + 4, true);
    at += 8;
    if (length < 0 || length > maxTokenLength) {
      throw new ModelFormatError(file, `token ${id}: length ${length} outside 0..max_token_length ${maxTokenLength}`);
    }
    if (at + length > bytes.length)
      throw new ModelFormatError(
        file,
        `truncated tokenizer: token ${id} needs ${length} bytes at ${at}, file has ${bytes.length}`,
      );
    let text: string;
    try {
      text = decoder.decode(bytes.subarray(at, at + length));
    } catch {
      throw new ModelFormatError(file, `token ${id}: piece is not valid UTF-8`);
    }
    at += length;
    pieces.push(text);
    scores.push(score);
  }
  if (vocabSize !== undefined && pieces.length !== vocabSize) {
    throw new ModelFormatError(file, `tokenizer holds ${pieces.length} tokens, the model needs ${vocabSize}`);
  }
  if (vocabSize !== undefined && at !== bytes.length) {
    throw new ModelFormatError(
      file,
      `tokenizer has ${bytes.length - at} bytes after its ${vocabSize} tokens (wrong vocab size?)`,
    );
  }
  if (pieces.length < 3)
    throw new ModelFormatError(file, `tokenizer holds only ${pieces.length} tokens, needs at least <unk>, BOS, EOS`);
  const ids = { unkId: 0, bosId: 1, eosId: 2 };
  const types = inferTokenTypes(pieces, ids);
  const spPieces = pieces.map((piece, id) => {
    if (types[id] === TOKEN_TYPE.control) return piece.trim(); // "\n<s>\n" -> "<s>"
    if (types[id] === TOKEN_TYPE.normal) return piece.replaceAll(" ", SPACE_MARK);
    return piece;
  });
  return new SentencePieceBpeTokenizer({ pieces: spPieces, scores, types, ...ids }, file);
}
