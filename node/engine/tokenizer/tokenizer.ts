/** Text to token ids and back. Every tokenizer of the engine (SentencePiece BPE, Hugging Face) implements it. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Token ids of text; with bos, the BOS id first. The empty string encodes to [] (or [bos]). */
  encode(text: string, options?: { bos?: boolean }): number[];
  /**
   * Text of a token sequence. A leading BOS is dropped, and the space SentencePiece put in front of the first
   * word is removed after it, so decode(encode(s, { bos: true })) === s. Without a leading BOS the ids are a
   * continuation and keep their leading space. Byte-fallback tokens are joined into UTF-8 before decoding;
   * incomplete UTF-8 at the end decodes to U+FFFD.
   */
  decode(ids: readonly number[]): string;
  /**
   * The same ids as encode(), computed in slices with turns of the event loop between them, so a long prompt
   * does not stall everything else the process serves. Optional: without it the engine calls encode().
   */
  encodeAsync?(text: string, options?: { bos?: boolean }): Promise<number[]>;
}
