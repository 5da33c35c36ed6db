// Tokenizers: llama2.c's SentencePiece BPE (tok512.bin and GGUF metadata) and the Hugging Face wrapper.
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ModelFormatError } from "../../node/engine/errors.ts";
import { GgufReader } from "../../node/engine/formats/gguf-read.ts";
import { ggufTokenizer } from "../../node/engine/formats/gguf-model.ts";
import { HfTokenizer, loadHfTokenizer } from "../../node/engine/tokenizer/hf-tokenizer.ts";
import { readLlama2cTokenizer, sentencePieceTokenizer } from "../../node/engine/tokenizer/sentencepiece-bpe.ts";
import { randomVocab } from "../../node/engine/formats/random-model.ts";
import { STORIES, llamaTokenizerJson, scratchDir } from "./formats-helpers.ts";

const TOK = join(STORIES, "tok512.bin");
const GGUF = join(STORIES, "stories260K.gguf");
const reference = JSON.parse(readFileSync(join(STORIES, "greedy_empty_prompt_256.json"), "utf8")) as {
  ids: number[];
  text: string;
};
const tok = readLlama2cTokenizer(TOK, 512);

/** tok512.bin parsed independently of the engine: llama2.c's raw pieces (" " not "▁", "\n<s>\n") and scores. */
function rawLlama2cVocab(): { pieces: string[]; scores: number[] } {
  const bytes = readFileSync(TOK);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pieces: string[] = [];
  const scores: number[] = [];
  for (let at = 4; at < bytes.length;) {
    scores.push(view.getFloat32(at, true));
    const length = view.getInt32(at + 4, true);
    pieces.push(bytes.subarray(at + 8, at + 8 + length).toString("utf8"));
    at += 8 + length;
  }
  return { pieces, scores };
}
const raw = rawLlama2cVocab();

/** A literal port of llama2.c run.c encode(): quadratic rescans, string lookups over every piece. */
function llama2cEncode(text: string, bos: boolean): number[] {
  const lookup = new Map<string, number>();
  raw.pieces.forEach((p, i) => lookup.has(p) || lookup.set(p, i));
  const tokens: number[] = bos ? [1] : [];
  if (text !== "") tokens.push(lookup.get(" ")!);
  for (const ch of text) {
    const id = lookup.get(ch);
    if (id !== undefined) tokens.push(id);
    else for (const b of new TextEncoder().encode(ch)) tokens.push(b + 3);
  }
  for (;;) {
    let best = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = lookup.get(raw.pieces[tokens[i]] + raw.pieces[tokens[i + 1]]);
      if (id !== undefined && raw.scores[id] > best) {
        best = raw.scores[id];
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

/**
 * What llama2.c's generate loop prints for a token sequence after the prompt: decode() strips the space after
 * BOS and maps <0xNN> to the raw byte; safe_printf() drops single bytes that are neither printable nor space.
 */
function llama2cPrint(ids: number[]): string {
  const out: number[] = [];
  for (let i = 1; i < ids.length; i++) {
    let piece = raw.pieces[ids[i]];
    if (ids[i - 1] === 1 && piece.startsWith(" ")) piece = piece.slice(1);
    const byte = /^<0x([0-9A-F]{2})>$/.exec(piece);
    const bytes = byte ? [parseInt(byte[1], 16)] : [...new TextEncoder().encode(piece)];
    if (
      bytes.length === 1 &&
      !(bytes[0] >= 0x20 && bytes[0] < 0x7f) &&
      ![0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20].includes(bytes[0])
    )
      continue;
    out.push(...bytes);
  }
  return new TextDecoder().decode(Uint8Array.from(out));
}

/** Deterministic mixed-script strings: words, punctuation, newlines, accents, CJK, emoji. */
function randomStrings(count: number, seed: number): string[] {
  const atoms = [
    "Once",
    " upon",
    " a",
    " time",
    ",",
    ".",
    " Lily",
    " the",
    " park",
    "\n",
    "  ",
    "!",
    '"',
    "é",
    "ü",
    "ß",
    "世界",
    "日本",
    "😀",
    "🐉",
    "👩‍💻",
    "\t",
    "x",
    "Q",
    "9",
    "-",
    "'",
    " ",
  ];
  let s = seed;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
  return Array.from({ length: count }, () =>
    Array.from({ length: Math.floor(next() * 25) }, () => atoms[Math.floor(next() * atoms.length)]).join(""),
  );
}

describe("llama2.c SentencePiece BPE (tok512.bin)", () => {
  it("has llama2.c's fixed ids and byte-fallback layout", () => {
    expect(tok.vocabSize).toBe(512);
    expect([tok.unkId, tok.bosId, tok.eosId]).toEqual([0, 1, 2]);
    expect(tok.piece(3)).toBe("<0x00>");
    expect(tok.piece(258)).toBe("<0xFF>");
  });

  it('encodes "Once upon a time" as llama2.c does (the reference output starts with these ids)', () => {
    const ids = tok.encode("Once upon a time", { bos: true });
    expect(ids).toEqual([1, 403, 407, 261, 378]);
    expect(ids).toEqual(reference.ids.slice(0, 5));
    expect(ids).toEqual(llama2cEncode("Once upon a time", true));
    expect(tok.encode("Once upon a time")).toEqual([403, 407, 261, 378]);
  });

  it("decodes llama2.c's greedy output to the text llama2.c printed", () => {
    expect(tok.decode(reference.ids)).toBe(reference.text);
    expect(llama2cPrint(reference.ids)).toBe(reference.text); // no unprintable single bytes in this sample
    // And the text re-encodes to exactly the ids the model produced.
    expect(tok.encode(reference.text, { bos: true })).toEqual(reference.ids);
  });

  it("matches a literal port of llama2.c's quadratic encode() on mixed-script strings", () => {
    for (const text of randomStrings(150, 7)) {
      expect(tok.encode(text, { bos: true }), JSON.stringify(text)).toEqual(llama2cEncode(text, true));
    }
  });

  it("round-trips text through encode/decode, including emoji and CJK via byte fallback", () => {
    for (const text of [
      "Once upon a time",
      "héllo wörld",
      "日本語のテキスト",
      "🐉 dragons 😀!",
      "👩‍💻\n\ttabs  and  spaces ",
      " leading space",
      "a",
      ...randomStrings(100, 3),
    ]) {
      expect(tok.decode(tok.encode(text, { bos: true })), JSON.stringify(text)).toBe(text);
    }
    // 😀 is not a piece: its UTF-8 bytes F0 9F 98 80 become the byte tokens byte + 3, after the "▁" piece.
    expect(tok.encode("😀").slice(-4)).toEqual([0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
  });

  it("encodes the empty string to [] or [bos], and decodes [] and [bos] to the empty string", () => {
    expect(tok.encode("")).toEqual([]);
    expect(tok.encode("", { bos: true })).toEqual([1]);
    expect(tok.decode([])).toBe("");
    expect(tok.decode([1])).toBe("");
  });

  it("keeps the leading space of a continuation, drops BOS/EOS, and ends incomplete UTF-8 with U+FFFD", () => {
    const ids = tok.encode("time");
    expect(tok.decode(ids)).toBe(" time");
    expect(tok.decode([1, ...ids])).toBe("time");
    expect(tok.decode([1, ...ids, 2])).toBe("time");
    const dragon = tok.encode("🐉", { bos: true });
    expect(tok.decode(dragon.slice(0, -1))).toBe("\uFFFD");
  });

  // How fast is a benchmark's question, not a test's (no wall-clock bound here): what a long prompt encodes to.
  it("encodes long prompts as llama2.c's quadratic encode() does, and round-trips them", () => {
    const text = reference.text.repeat(3); // ~1.9k characters: the literal port rescans all of it per merge
    expect(tok.encode(text, { bos: true })).toEqual(llama2cEncode(text, true));
    const long = reference.text.repeat(40); // ~25k characters
    const ids = tok.encode(long, { bos: true });
    expect(ids.slice(0, 200)).toEqual(reference.ids.slice(0, 200)); // the text re-encodes to the model's ids
    expect(tok.decode(ids)).toBe(long);
  });

  it("refuses truncated files and a wrong vocabulary size, naming the file", () => {
    const dir = scratchDir("tok");
    const cut = join(dir, "tok512.bin");
    writeFileSync(cut, readFileSync(TOK).subarray(0, 3000));
    expect(() => readLlama2cTokenizer(cut, 512)).toThrow(ModelFormatError);
    expect(() => readLlama2cTokenizer(cut, 512)).toThrow(`${cut}: truncated tokenizer`);
    const whole = join(dir, "whole.bin");
    copyFileSync(TOK, whole);
    expect(() => readLlama2cTokenizer(whole, 600)).toThrow(`${whole}: tokenizer holds 512 tokens, the model needs 600`);
    expect(() => readLlama2cTokenizer(whole, 500)).toThrow(`${whole}: tokenizer has`);
    expect(() => readLlama2cTokenizer(join(dir, "absent.bin"))).toThrow(
      `${join(dir, "absent.bin")}: cannot read tokenizer: ENOENT`,
    );
  });
});

describe("SentencePiece BPE from GGUF metadata", () => {
  it("equals the tok512.bin tokenizer: same vocabulary, same encodings", () => {
    const reader = GgufReader.open(GGUF);
    const fromGguf = (() => {
      try {
        return ggufTokenizer(reader);
      } finally {
        reader.close();
      }
    })();
    expect(fromGguf.vocab()).toEqual(tok.vocab());
    expect([fromGguf.bosId, fromGguf.eosId, fromGguf.unkId]).toEqual([1, 2, 0]);
    for (const text of [reference.text, ...randomStrings(50, 11)]) {
      expect(fromGguf.encode(text, { bos: true })).toEqual(tok.encode(text, { bos: true }));
    }
    expect(fromGguf.decode(reference.ids)).toBe(reference.text);
  });

  it("validates the vocabulary it is given", () => {
    const vocab = tok.vocab();
    expect(() => sentencePieceTokenizer({ ...vocab, scores: vocab.scores.slice(1) }, "x.gguf")).toThrow(
      "x.gguf: tokenizer has 512 tokens but 511 scores",
    );
    expect(() => sentencePieceTokenizer({ ...vocab, bosId: 999 }, "x.gguf")).toThrow(
      "x.gguf: tokenizer bos id 999 outside the 512 tokens",
    );
    const types = [...vocab.types];
    types[300] = 6;
    expect(() => sentencePieceTokenizer({ ...vocab, types }, "x.gguf")).toThrow("x.gguf: token 300 has type byte");
  });

  it("works on a synthetic 32000-token vocabulary (random models)", () => {
    const synthetic = sentencePieceTokenizer(randomVocab(32000, 5), "random");
    expect(synthetic.vocabSize).toBe(32000);
    for (const text of ["Once upon a time there was a little girl.", ...randomStrings(30, 5)]) {
      expect(synthetic.decode(synthetic.encode(text, { bos: true }))).toBe(text);
    }
  });
});

describe("Hugging Face tokenizer.json", () => {
  const json = llamaTokenizerJson(tok.vocab());
  const hf = new HfTokenizer(json, { bos_token: "<s>", eos_token: "</s>" }, "tokenizer.json");

  it("reads BOS/EOS from tokenizer_config.json and the vocabulary size", () => {
    expect([hf.bosId, hf.eosId, hf.vocabSize]).toEqual([1, 2, 512]);
  });

  it("encodes like the SentencePiece BPE it was converted from, with BOS only when asked", () => {
    for (const text of ["Once upon a time", reference.text, "héllo 世界 😀", "Lily's mom said, \"Lily, let's go.\""]) {
      expect(hf.encode(text, { bos: true }), JSON.stringify(text)).toEqual(tok.encode(text, { bos: true }));
      expect(hf.encode(text)).toEqual(tok.encode(text));
    }
    expect(hf.encode("")).toEqual([]);
    expect(hf.encode("", { bos: true })).toEqual([1]);
  });

  it("decodes per the Tokenizer contract: space stripped after BOS, kept in a continuation", () => {
    expect(hf.decode(reference.ids)).toBe(reference.text);
    expect(hf.decode(hf.encode("Once upon a time", { bos: true }))).toBe("Once upon a time");
    expect(hf.decode(hf.encode("time"))).toBe(" time");
    expect(hf.decode(hf.encode("🐉 ok", { bos: true }))).toBe("🐉 ok");
    expect(hf.decode([])).toBe("");
    expect(hf.decode([1])).toBe("");
  });

  it("loads from a folder and names the file when something is missing or malformed", () => {
    const dir = scratchDir("hf-tok");
    expect(() => loadHfTokenizer(dir)).toThrow(
      `${join(dir, "tokenizer.json")}: missing tokenizer: no tokenizer.json in ${dir}`,
    );
    writeFileSync(join(dir, "tokenizer.json"), "{ not json");
    expect(() => loadHfTokenizer(dir)).toThrow(`${join(dir, "tokenizer.json")}: not valid JSON`);
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(json));
    writeFileSync(
      join(dir, "tokenizer_config.json"),
      JSON.stringify({ bos_token: { content: "<s>" }, eos_token: "</s>" }),
    );
    const loaded = loadHfTokenizer(dir);
    expect(loaded.encode("Once upon a time", { bos: true })).toEqual([1, 403, 407, 261, 378]);
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ bos_token: "<nope>" }));
    expect(() => loadHfTokenizer(dir)).toThrow(
      `${join(dir, "tokenizer.json")}: tokenizer_config.json names bos token "<nope>", which is not in the vocabulary`,
    );
  });
});
