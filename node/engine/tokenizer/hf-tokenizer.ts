// Hugging Face tokenizer.json (+ tokenizer_config.json) behind the engine's Tokenizer interface.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HfLibraryTokenizer } from "@huggingface/tokenizers";
import { ModelFormatError } from "../errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** BOS/EOS token texts tried when neither tokenizer_config.json nor config.json names them. */
const BOS_GUESSES = ["<s>", "<|begin_of_text|>", "<bos>"];
const EOS_GUESSES = ["</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>"];

/** What the model's other files say about the special tokens (config.json, generation_config.json, GGUF). */
export interface SpecialTokenIds {
  bosId?: number;
  eosId?: number;
  /** Every id that ends a generation (generation_config.json's eos_token_id list); eosId is added to it. */
  eosIds?: readonly number[];
  /** Whether a prompt starts with BOS; default: what tokenizer_config.json's add_bos_token or the post-processor says. */
  addBos?: boolean;
}

/**
 * BOS is added here, not by the library's post-processor, so that encode() honours { bos } whatever template
 * the tokenizer.json carries; { bos } adds it only where transformers would (addBos: Llama's and Gemma's
 * tokenizers, not Qwen's). Decoding from a BOS lets the library's decoder strip the SentencePiece prefix
 * space; decoding a continuation goes through an anchor token so that the decoder's "strip the first space"
 * rule hits the anchor and not the continuation (the usual incremental-detokenization trick).
 */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  /** -1 when the tokenizer has no BOS and adds none (Qwen without bos_token_id). */
  readonly bosId: number;
  readonly eosId: number;
  /** Every id that ends a generation, eosId first. */
  readonly eosIds: readonly number[];
  /** Whether encode(text, { bos: true }) puts BOS first. */
  readonly addBos: boolean;
  readonly source: string;
  private readonly inner: HfLibraryTokenizer;
  /** An ordinary token whose text is stable, prepended when decoding a continuation; -1 when none found. */
  private readonly anchorId: number;
  private readonly anchorText: string;

  constructor(tokenizerJson: unknown, tokenizerConfig: unknown, source: string, ids: SpecialTokenIds = {}) {
    this.source = source;
    if (typeof tokenizerJson !== "object" || tokenizerJson === null || !("model" in tokenizerJson)) {
      throw new ModelFormatError(source, 'not a tokenizer.json: no "model" section');
    }
    const config = (typeof tokenizerConfig === "object" && tokenizerConfig !== null ? tokenizerConfig : {}) as Record<
      string,
      unknown
    >;
    try {
      this.inner = new HfLibraryTokenizer(tokenizerJson, config);
    } catch (error) {
      throw new ModelFormatError(source, `tokenizer.json is not supported: ${(error as Error).message}`);
    }
    const vocab = this.inner.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const resolve = (
      label: string,
      explicit: number | undefined,
      configured: unknown,
      guesses: string[],
    ): number | undefined => {
      if (explicit !== undefined) return explicit;
      const text = typeof configured === "string" ? configured : (configured as { content?: unknown } | null)?.content;
      if (typeof text === "string") {
        const id = this.inner.token_to_id(text);
        if (id === undefined)
          throw new ModelFormatError(
            source,
            `tokenizer_config.json names ${label} token ${JSON.stringify(text)}, which is not in the vocabulary`,
          );
        return id;
      }
      for (const guess of guesses) {
        const id = this.inner.token_to_id(guess);
        if (id !== undefined) return id;
      }
      return undefined;
    };
    const postProcessorBos = templateBos(tokenizerJson as { post_processor?: unknown });
    this.addBos =
      ids.addBos ?? (typeof config.add_bos_token === "boolean" ? config.add_bos_token : postProcessorBos !== undefined);
    const bosGuesses = postProcessorBos === undefined ? BOS_GUESSES : [postProcessorBos, ...BOS_GUESSES];
    const bosId = resolve("bos", ids.bosId, config.bos_token, bosGuesses);
    if (bosId === undefined && this.addBos) {
      throw new ModelFormatError(source, "cannot tell the bos token: name it in tokenizer_config.json (bos_token)");
    }
    this.bosId = bosId ?? -1;
    const eosId = resolve("eos", ids.eosId ?? ids.eosIds?.[0], config.eos_token, EOS_GUESSES);
    if (eosId === undefined)
      throw new ModelFormatError(source, "cannot tell the eos token: name it in tokenizer_config.json (eos_token)");
    this.eosId = eosId;
    this.eosIds = [...new Set([eosId, ...(ids.eosIds ?? [])])];
    const anchor = this.encode("a");
    this.anchorId = anchor.length > 0 ? anchor[anchor.length - 1] : -1;
    this.anchorText = this.anchorId >= 0 ? this.rawDecode([this.anchorId]) : "";
  }

  encode(text: string, options?: { bos?: boolean }): number[] {
    const ids = text.length === 0 ? [] : this.inner.encode(text, { add_special_tokens: false }).ids;
    return options?.bos && this.addBos ? [this.bosId, ...ids] : ids;
  }

  decode(ids: readonly number[]): string {
    if (ids.length === 0) return "";
    if (ids[0] === this.bosId) return this.rawDecode(ids.slice(1));
    if (this.anchorId >= 0) {
      const withAnchor = this.rawDecode([this.anchorId, ...ids]);
      if (withAnchor.startsWith(this.anchorText)) return withAnchor.slice(this.anchorText.length);
    }
    return this.rawDecode(ids);
  }

  private rawDecode(ids: readonly number[]): string {
    if (ids.length === 0) return "";
    return this.inner.decode([...ids], { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }
}

/**
 * The special token a tokenizer.json's post-processor puts in front of a single sequence (a TemplateProcessing,
 * alone or in a Sequence of processors, whose template starts with a SpecialToken): Llama's and Gemma's BOS.
 */
function templateBos(json: { post_processor?: unknown }): string | undefined {
  const processors = (p: unknown): unknown[] => {
    const node = p as { type?: unknown; processors?: unknown } | null | undefined;
    if (node?.type === "Sequence" && Array.isArray(node.processors)) return node.processors.flatMap(processors);
    return node ? [node] : [];
  };
  for (const p of processors(json.post_processor)) {
    const template = p as { type?: unknown; single?: unknown };
    if (template.type !== "TemplateProcessing" || !Array.isArray(template.single)) continue;
    const first = template.single[0] as { SpecialToken?: { id?: unknown } } | undefined;
    if (typeof first?.SpecialToken?.id === "string") return first.SpecialToken.id;
  }
  return undefined;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ModelFormatError(
      path,
      `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelFormatError(path, `not valid JSON (${(error as Error).message})`);
  }
}

/**
 * The tokenizer of a Hugging Face folder: tokenizer.json, with tokenizer_config.json when present. BOS/EOS ids
 * given by the caller (config.json's bos_token_id, generation_config.json's eos_token_id) win over the
 * configured token texts.
 */
export function loadHfTokenizer(folder: string, ids: SpecialTokenIds = {}): HfTokenizer {
  const tokenizerPath = join(folder, "tokenizer.json");
  if (!existsSync(tokenizerPath)) {
    const hint = existsSync(join(folder, "tokenizer.model"))
      ? " (tokenizer.model, SentencePiece protobuf, is not read; convert it to tokenizer.json)"
      : "";
    throw new ModelFormatError(tokenizerPath, `missing tokenizer: no tokenizer.json in ${folder}${hint}`);
  }
  const configPath = join(folder, "tokenizer_config.json");
  const config = existsSync(configPath) ? readJson(configPath) : {};
  return new HfTokenizer(readJson(tokenizerPath), config, tokenizerPath, ids);
}
