// A SentencePiece BPE vocabulary as the tokenizer.json Hugging Face's converters write for it (LlamaConverter,
// GemmaConverter): what the HF folders of random models carry, read back through @huggingface/tokenizers.
import { TOKEN_TYPE, type SentencePieceVocab } from "./sentencepiece-bpe.ts";

/**
 * BPE with byte fallback, merges ranked by the score of the merged piece, control / user-defined / unknown
 * tokens as added tokens, spaces replaced by "▁". With addSpacePrefix (Llama, Mistral) a "▁" is prepended and
 * the decoder strips one leading space; Gemma's tokenizer does neither. BOS comes first from the
 * post-processor, as transformers' Llama and Gemma tokenizers add it.
 */
export function sentencePieceTokenizerJson(
  vocab: SentencePieceVocab,
  options: { addSpacePrefix: boolean } = { addSpacePrefix: true },
): Record<string, unknown> {
  const vocabMap: Record<string, number> = {};
  vocab.pieces.forEach((piece, id) => {
    if (!(piece in vocabMap)) vocabMap[piece] = id;
  });
  const text = new Set(vocab.pieces.filter((_, id) => vocab.types[id] === TOKEN_TYPE.normal));
  const merges: { pair: [string, string]; score: number; id: number }[] = [];
  vocab.pieces.forEach((piece, id) => {
    if (vocab.types[id] !== TOKEN_TYPE.normal) return;
    const chars = [...piece];
    for (let cut = 1; cut < chars.length; cut++) {
      const a = chars.slice(0, cut).join("");
      const b = chars.slice(cut).join("");
      if (text.has(a) && text.has(b)) merges.push({ pair: [a, b], score: vocab.scores[id], id });
    }
  });
  merges.sort((x, y) => y.score - x.score || x.id - y.id);
  const addedTypes: number[] = [TOKEN_TYPE.unknown, TOKEN_TYPE.control, TOKEN_TYPE.userDefined];
  const added = vocab.pieces.flatMap((content, id) =>
    addedTypes.includes(vocab.types[id])
      ? [
          {
            id,
            content,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
            special: vocab.types[id] !== TOKEN_TYPE.userDefined,
          },
        ]
      : [],
  );
  const bos = vocab.pieces[vocab.bosId];
  const replaceSpaces = { type: "Replace", pattern: { String: " " }, content: "\u2581" };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: options.addSpacePrefix
      ? { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "\u2581" }, replaceSpaces] }
      : replaceSpaces,
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [vocab.bosId], tokens: [bos] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "\u2581" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        ...(options.addSpacePrefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: vocab.pieces[vocab.unkId],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: vocabMap,
      merges: merges.map((m) => m.pair),
    },
  };
}
