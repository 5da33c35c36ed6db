// The families' tokenizers in both file forms: Llama 3's and Qwen's byte-level BPE (tokenizer.json through
// @huggingface/tokenizers; GGUF "gpt2" with merges), Mistral's and Gemma's SentencePiece BPE. Exact round trips,
// the same ids from both forms, the pre-tokenizer regexes and ignore_merges as the models define them, special
// tokens written in text, BOS where the model adds one, every EOS id, and chat prompts through the templates.
import { describe, expect, it } from "vitest";
import { loadModel } from "../../../node/engine/formats/load-model.ts";
import type { LoadedModel } from "../../../node/engine/model/weights.ts";
import { createRng } from "../../../node/engine/sampling/rng.ts";
import { TextStream } from "../../../node/engine/text-stream.ts";
import {
  BYTE_CHARS,
  byteLevelTokenizerJson,
  type ByteLevelBpeVocab,
} from "../../../node/engine/tokenizer/byte-level-bpe.ts";
import { chatTemplateOf } from "../../../node/engine/tokenizer/chat-template.ts";
import { HfTokenizer } from "../../../node/engine/tokenizer/hf-tokenizer.ts";
import { TOKEN_TYPE } from "../../../node/engine/tokenizer/sentencepiece-bpe.ts";
import { familyFixture, MODEL_PRESETS, type ModelPreset } from "./fixtures.ts";

/** Mixed text: ASCII words and numbers, accents, CJK, emoji (ZWJ sequences), tabs, newlines, runs of spaces. */
function texts(seed: number): string[] {
  const rng = createRng(seed);
  const parts = [
    "the",
    " quick",
    "Fox",
    " 12345",
    "6",
    " héllo",
    " 日本語",
    " 🐉",
    "👩‍💻",
    "\t",
    "\n",
    "\n\n",
    "  ",
    "'s",
    "IT'S",
    "!?",
    " (x)",
    "ß",
    "ﬁ",
  ];
  const random = Array.from({ length: 30 }, () =>
    Array.from({ length: 1 + Math.floor(rng() * 12) }, () => parts[Math.floor(rng() * parts.length)]).join(""),
  );
  return ["Hello world", " leading space", "trailing space ", "a", "", ...random];
}

const models = new Map<string, [LoadedModel, LoadedModel]>();
async function forms(preset: ModelPreset): Promise<[LoadedModel, LoadedModel]> {
  if (!models.has(preset)) {
    const { hf, gguf } = familyFixture(preset);
    models.set(preset, [await loadModel(hf), await loadModel(gguf)]);
  }
  return models.get(preset)!;
}

const idOf = (model: LoadedModel, text: string): number => {
  const ids = model.tokenizer.encode(text);
  expect(ids, text).toHaveLength(1);
  return ids[0];
};

describe.each(MODEL_PRESETS)("%s", (preset) => {
  it("round-trips text exactly, with the same ids from its Hugging Face folder and its GGUF", async () => {
    const [hf, gguf] = await forms(preset);
    for (const text of texts(preset.length)) {
      const ids = hf.tokenizer.encode(text, { bos: true });
      expect(gguf.tokenizer.encode(text, { bos: true }), JSON.stringify(text)).toEqual(ids);
      expect(hf.tokenizer.decode(ids), JSON.stringify(text)).toBe(text);
      expect(gguf.tokenizer.decode(ids), JSON.stringify(text)).toBe(text);
    }
  });

  it("puts BOS in front of a prompt only where the model's tokenizer does, and stops on every EOS id", async () => {
    const [hf, gguf] = await forms(preset);
    const bos = { llama3: "<|begin_of_text|>", qwen2: null, qwen3: null, mistral: "<s>", gemma2: "<bos>" }[preset];
    for (const model of [hf, gguf]) {
      const prompt = model.tokenizer.encode("Hi", { bos: true });
      if (bos === null) expect(prompt).toEqual(model.tokenizer.encode("Hi"));
      else expect(prompt).toEqual([idOf(model, bos), ...model.tokenizer.encode("Hi")]);
    }
    const eos = {
      llama3: ["<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"],
      qwen2: ["<|im_end|>", "<|endoftext|>"],
      qwen3: ["<|im_end|>", "<|endoftext|>"],
      mistral: ["</s>"],
      gemma2: ["<eos>", "<end_of_turn>"],
    }[preset];
    for (const model of [hf, gguf]) {
      expect([...model.tokenizer.eosIds].sort()).toEqual(eos.map((t) => idOf(model, t)).sort());
      for (const text of eos) {
        const stream = new TextStream(model.tokenizer, model.tokenizer.encode("Hi", { bos: true }));
        expect(stream.push(idOf(model, text)).finish, text).toBe("eos");
      }
    }
  });

  it("renders chats with the model's template into the same prompt ids from both forms", async () => {
    const [hf, gguf] = await forms(preset);
    const messages = [
      { role: "user" as const, content: "What is 2+2?" },
      { role: "assistant" as const, content: "4" },
      { role: "user" as const, content: "And 3+3?" },
    ];
    const prompts = [hf, gguf].map((model) =>
      model.tokenizer.encode(chatTemplateOf(model).render(messages), { bos: true }),
    );
    expect(prompts[1]).toEqual(prompts[0]);
    const turn = {
      llama3: "<|start_header_id|>",
      qwen2: "<|im_start|>",
      qwen3: "<|im_start|>",
      mistral: null,
      gemma2: "<start_of_turn>",
    }[preset];
    // Three turns and the generation prompt's header, each opened by the turn's special token.
    if (turn) expect(prompts[0].filter((id) => id === idOf(hf, turn))).toHaveLength(4);
    const bos = hf.tokenizer.bosId;
    expect(prompts[0].filter((id) => id === bos)).toHaveLength(preset.startsWith("qwen") ? 0 : 1);
  });
});

describe("byte-level BPE as each family defines it", () => {
  /** The 256 bytes, digits merged up to "1234", and "ab" in the vocabulary with no merge that makes it. */
  function vocab(pre: "llama-bpe" | "qwen2"): ByteLevelBpeVocab {
    const tokens = [...BYTE_CHARS, "12", "123", "1234", "ab", "<|special|>"];
    const types = tokens.map((_, i) => (i === tokens.length - 1 ? TOKEN_TYPE.control : TOKEN_TYPE.normal));
    const merges: [string, string][] = [
      ["1", "2"],
      ["12", "3"],
      ["123", "4"],
    ];
    return { tokens, types, merges, pre, bosId: -1, eosId: tokens.length - 1, addBos: false };
  }
  const tokenizer = (pre: "llama-bpe" | "qwen2") =>
    new HfTokenizer(byteLevelTokenizerJson(vocab(pre), "test"), {}, "test", { eosId: 260, addBos: false });
  const [n12, n123, n1234, ab, special] = [256, 257, 258, 259, 260];
  const byte = (c: string) => c.charCodeAt(0);

  it("Llama 3's regex splits digits in threes; Qwen2's one by one", () => {
    expect(tokenizer("llama-bpe").encode("1234")).toEqual([n123, byte("4")]);
    expect(tokenizer("qwen2").encode("1234")).toEqual(["1", "2", "3", "4"].map(byte));
    // "1234" is reachable by merges but not through either regex; "12" alone is.
    for (const pre of ["llama-bpe", "qwen2"] as const) expect(tokenizer(pre).encode("1234 12")).not.toContain(n1234);
    expect(tokenizer("llama-bpe").encode("12")).toEqual([n12]);
  });

  it("Llama 3 takes a whole word found in the vocabulary before merging (ignore_merges); Qwen2 merges", () => {
    expect(tokenizer("llama-bpe").encode("ab")).toEqual([ab]);
    expect(tokenizer("qwen2").encode("ab")).toEqual([byte("a"), byte("b")]);
  });

  it("added tokens written in the text are one id; text around them is encoded as bytes", () => {
    for (const pre of ["llama-bpe", "qwen2"] as const) {
      expect(tokenizer(pre).encode("a<|special|>b")).toEqual([byte("a"), special, byte("b")]);
      expect(tokenizer(pre).decode([byte("a"), special, byte("b")])).toBe("ab"); // special tokens print nothing
    }
  });
});

describe("SentencePiece without a space prefix (Gemma) and with one (Mistral)", () => {
  it("Gemma's first word has no '▁' piece in front; Mistral's has; specials in text are their ids", async () => {
    const [gemma, gemmaGguf] = await forms("gemma2");
    const [mistral] = await forms("mistral");
    const withPrefix = mistral.tokenizer.encode("Hello");
    const withoutPrefix = gemma.tokenizer.encode("Hello");
    expect(mistral.tokenizer.decode(withPrefix)).toBe(" Hello"); // a continuation keeps SentencePiece's space
    expect(gemma.tokenizer.decode(withoutPrefix)).toBe("Hello");
    const start = idOf(gemma, "<start_of_turn>");
    for (const model of [gemma, gemmaGguf]) {
      const ids = model.tokenizer.encode("<start_of_turn>user\nHi");
      expect(ids[0]).toBe(start);
      expect(ids.slice(1)).toEqual(model.tokenizer.encode("user\nHi"));
    }
  });
});
