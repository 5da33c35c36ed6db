/** Text to token ids and back. Every tokenizer of the engine (SentencePiece BPE, Hugging Face) implements it. */
export interface Tokenizer {
  readonly vocabSize: number;
  /** -1 for a tokenizer without BOS (Qwen's, when its config names none). */
  readonly bosId: number;
  readonly eosId: number;
  /**
   * Every id that ends a generation, eosId included: generation_config.json's eos_token_id list (Llama 3
   * Instruct stops on <|eot_id|> and <|end_of_text|>), or llama.cpp's end-of-generation tokens of a GGUF.
   */
  readonly eosIds: readonly number[];
  /**
   * Token ids of text, special tokens written in it (a chat template's <|im_start|>) as their ids. With bos the
   * text is a whole prompt: BOS first where the model's tokenizer puts one (Llama's and Gemma's; Qwen's puts
   * none). The empty string encodes to [] (or [bos]).
   */
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
