// Byte-level BPE (GPT-2's scheme, used by Llama 3 and Qwen): a vocabulary over the 256 bytes written as printable
// characters, ranked merges, a pre-tokenizer regex, and added special tokens. The engine runs it through
// @huggingface/tokenizers (hf-tokenizer.ts); this module describes such a vocabulary, turns it into the
// tokenizer.json that library reads (for GGUF's "gpt2" tokenizers and the HF folders random models write), and
// generates synthetic ones for random models.
import { ModelFormatError } from "../errors.ts";
import { TOKEN_TYPE } from "./sentencepiece-bpe.ts";

/**
 * The pre-tokenizer regexes, as the models' tokenizer.json files carry them, by llama.cpp's tokenizer.ggml.pre
 * name: Llama 3 ("llama-bpe") splits numbers into groups of up to three digits, Qwen2 ("qwen2") digit by digit.
 */
export const PRE_TOKENIZER_PATTERNS = {
  "llama-bpe":
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2:
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
} as const;
export type PreTokenizerName = keyof typeof PRE_TOKENIZER_PATTERNS;

/** A byte-level BPE vocabulary as GGUF stores it (tokenizer.ggml.model "gpt2"). */
export interface ByteLevelBpeVocab {
  /** Token texts in the byte-to-character alphabet (a space is "Ġ"); special tokens as they are written. */
  tokens: string[];
  /** TOKEN_TYPE per token: normal, or control / user-defined for added tokens. */
  types: number[];
  /** Merges in rank order, each a pair of token texts. */
  merges: [string, string][];
  pre: PreTokenizerName;
  /** -1 when the vocabulary has no BOS (Qwen). */
  bosId: number;
  eosId: number;
  /** Whether a prompt starts with BOS (Llama 3's post-processor adds it; Qwen's adds nothing). */
  addBos: boolean;
}

/** GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for U+0100 onwards in byte order. */
export const BYTE_CHARS: readonly string[] = (() => {
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : next++));
})();

/** The byte-level text of a string: its UTF-8 bytes as BYTE_CHARS. */
export function byteLevelText(text: string): string {
  return [...new TextEncoder().encode(text)].map((b) => BYTE_CHARS[b]).join("");
}

/** True when the pre-tokenizer name is one whose regex the engine knows. */
export function isPreTokenizerName(name: string): name is PreTokenizerName {
  return Object.hasOwn(PRE_TOKENIZER_PATTERNS, name);
}

/**
 * The tokenizer.json of a byte-level vocabulary, in the shape transformers' converters write for Llama 3 and
 * Qwen2: NFC normalization (Qwen2), the Split regex then ByteLevel without its own regex, BPE over the merges
 * (ignore_merges for Llama 3, whose whole-word tokens win over merging), control and user-defined tokens as
 * added tokens, BOS put in front by a TemplateProcessing when the vocabulary adds one, ByteLevel decoding.
 */
export function byteLevelTokenizerJson(vocab: ByteLevelBpeVocab, source: string): Record<string, unknown> {
  const n = vocab.tokens.length;
  if (vocab.types.length !== n)
    throw new ModelFormatError(source, `tokenizer has ${n} tokens but ${vocab.types.length} token types`);
  const added = (type: number): boolean => type === TOKEN_TYPE.control || type === TOKEN_TYPE.userDefined;
  const model: Record<string, number> = {};
  const addedTokens: Record<string, unknown>[] = [];
  vocab.tokens.forEach((token, id) => {
    if (added(vocab.types[id])) {
      const special = vocab.types[id] === TOKEN_TYPE.control;
      addedTokens.push({
        id,
        content: token,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: !special,
        special,
      });
    } else if (!(token in model)) {
      model[token] = id;
    }
  });
  const bos = vocab.addBos ? vocab.tokens[vocab.bosId] : undefined;
  if (vocab.addBos && bos === undefined)
    throw new ModelFormatError(source, `tokenizer adds BOS but its id ${vocab.bosId} is not a token`);
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: vocab.pre === "qwen2" ? { type: "NFC" } : null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: PRE_TOKENIZER_PATTERNS[vocab.pre] }, behavior: "Isolated", invert: false },
        byteLevel,
      ],
    },
    post_processor: bos
      ? {
          type: "Sequence",
          processors: [
            byteLevel,
            {
              type: "TemplateProcessing",
              single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
              pair: [
                { SpecialToken: { id: bos, type_id: 0 } },
                { Sequence: { id: "A", type_id: 0 } },
                { SpecialToken: { id: bos, type_id: 1 } },
                { Sequence: { id: "B", type_id: 1 } },
              ],
              special_tokens: { [bos]: { id: bos, ids: [vocab.bosId], tokens: [bos] } },
            },
          ],
        }
      : byteLevel,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: vocab.pre === "llama-bpe",
      vocab: model,
      merges: vocab.merges,
    },
  };
}

/** Letters by English frequency: synthetic merges grow words from them, as a trained BPE's first merges do. */
const LETTERS = "etaoinshrdlucmfwypvbgkjqxz";

/**
 * A synthetic byte-level vocabulary of exactly vocabSize tokens: the 256 bytes, then merged tokens (each the
 * concatenation of two earlier ones, ranked in creation order, so BPE reaches it), then the special tokens,
 * control-typed, last. Deterministic per seed.
 */
export function randomByteLevelVocab(
  vocabSize: number,
  seed: number,
  specials: { pre: PreTokenizerName; tokens: readonly string[]; bos: string | null; eos: string; addBos: boolean },
): ByteLevelBpeVocab {
  const normalCount = vocabSize - specials.tokens.length;
  if (!Number.isInteger(vocabSize) || normalCount < 300) {
    throw new RangeError(
      `a synthetic byte-level vocabulary needs at least ${300 + specials.tokens.length} tokens, got ${vocabSize}`,
    );
  }
  const tokens = [...BYTE_CHARS];
  const seen = new Set(tokens);
  const merges: [string, string][] = [];
  const words: string[] = [...LETTERS].flatMap((c) => [c, BYTE_CHARS[0x20] + c]);
  for (const word of words) {
    if (seen.has(word)) continue;
    merges.push([word.slice(0, -1), word.slice(-1)]);
    tokens.push(word);
    seen.add(word);
  }
  let state = (seed ^ 0x2545f491) >>> 0 || 1;
  const next = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  for (let attempts = 0; tokens.length < normalCount; attempts++) {
    if (attempts > 100 * vocabSize) throw new Error(`could not generate ${vocabSize} distinct tokens`);
    const left = words[Math.floor(next() * next() * words.length)];
    const right = LETTERS[Math.floor(next() * next() * LETTERS.length)];
    const token = left + right;
    if (token.length > 12 || seen.has(token)) continue;
    merges.push([left, right]);
    tokens.push(token);
    seen.add(token);
    words.push(token);
  }
  const types = tokens.map(() => TOKEN_TYPE.normal as number);
  for (const special of specials.tokens) {
    tokens.push(special);
    types.push(TOKEN_TYPE.control);
  }
  return {
    tokens,
    types,
    merges,
    pre: specials.pre,
    bosId: specials.bos === null ? -1 : tokens.indexOf(specials.bos),
    eosId: tokens.indexOf(specials.eos),
    addBos: specials.addBos,
  };
}
