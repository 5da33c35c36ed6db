import type { Backend, SamplingParams } from "./backend/backend.ts";
import { InvalidRequestError } from "./errors.ts";
import { BlockAllocator } from "./kv/block-allocator.ts";
import { createRng } from "./sampling/rng.ts";
import { TextStream, type FinishReason } from "./text-stream.ts";
import type { Tokenizer } from "./tokenizer/tokenizer.ts";

/** One generation: a prompt, how to sample, when to stop. */
export interface GenerateRequest {
  /** Prompt text; encoded with BOS first. Ignored when promptTokenIds is given. */
  prompt?: string;
  promptTokenIds?: number[];
  /** Adapter slot of the backend, or -1 for the base model. */
  slot: number;
  maxTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Stop when the generated text contains one of these; the text ends before it. */
  stop?: string[];
  /** Tokens per forward step while prefilling the prompt. */
  prefillChunk?: number;
  /** Called with each new piece of text as it becomes final. */
  onText?: (text: string) => void;
}

export interface GenerateResult {
  text: string;
  /** The generated ids only (without the prompt), EOS excluded. */
  tokenIds: number[];
  promptTokenIds: number[];
  finishReason: FinishReason;
  /** Milliseconds per generated token, prefill excluded. */
  msPerToken: number;
  prefillMs: number;
}

/** Validates sampling values; the same rules apply to every entry point (CLI, engine, API). */
export function checkSampling(params: { maxTokens: number; temperature: number; topK?: number; topP?: number }): SamplingParams {
  if (!Number.isInteger(params.maxTokens) || params.maxTokens < 0) throw new InvalidRequestError("max_tokens", `must be a non-negative integer, got ${params.maxTokens}`);
  if (!(params.temperature >= 0) || !Number.isFinite(params.temperature)) throw new InvalidRequestError("temperature", `must be a finite number >= 0, got ${params.temperature}`);
  const topK = params.topK ?? 0;
  const topP = params.topP ?? 1;
  if (!Number.isInteger(topK) || topK < 0) throw new InvalidRequestError("top_k", `must be a non-negative integer, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new InvalidRequestError("top_p", `must be in (0, 1], got ${topP}`);
  return { temperature: params.temperature, topK, topP };
}

/**
 * Generates one sequence on a backend: prefill the prompt in chunks, then decode token by token until EOS,
 * a stop string or maxTokens. A single-sequence loop: the serving engine batches many of these.
 */
export async function generate(backend: Backend, tokenizer: Tokenizer, request: GenerateRequest): Promise<GenerateResult> {
  const params = checkSampling(request);
  const promptTokenIds = request.promptTokenIds ?? tokenizer.encode(request.prompt ?? "", { bos: true });
  if (promptTokenIds.length === 0) throw new InvalidRequestError("prompt", "is empty (no BOS either)");
  const maxSeqLen = backend.config.maxSeqLen;
  if (promptTokenIds.length >= maxSeqLen) throw new InvalidRequestError("prompt", `has ${promptTokenIds.length} tokens, the context holds ${maxSeqLen}`);
  const maxTokens = Math.min(request.maxTokens, maxSeqLen - promptTokenIds.length);

  const kv = new BlockAllocator(backend.options.numBlocks, backend.options.blockSize);
  const blockTable: number[] = [];
  const rng = createRng(request.seed ?? 0);
  const uniforms = new Float32Array(1);
  const chunk = request.prefillChunk ?? 64;
  const stream = new TextStream(tokenizer, promptTokenIds, request.stop ?? []);
  let finishReason: FinishReason = "length";

  const step = async (tokens: number[], position: number): Promise<number> => {
    if (!kv.grow(blockTable, position + tokens.length)) throw new InvalidRequestError("max_tokens", "does not fit the KV cache");
    uniforms[0] = rng();
    const [next] = await backend.sample([{ tokens, position, blockTable, slot: request.slot }], [params], uniforms);
    return next;
  };

  const prefillStart = performance.now();
  let next = -1;
  for (let at = 0; at < promptTokenIds.length; at += chunk) {
    const tokens = promptTokenIds.slice(at, at + chunk);
    if (at + chunk < promptTokenIds.length) {
      if (!kv.grow(blockTable, at + tokens.length)) throw new InvalidRequestError("prompt", "does not fit the KV cache");
      await backend.forward([{ tokens, position: at, blockTable, slot: request.slot }]);
    } else if (maxTokens > 0) {
      next = await step(tokens, at);
    }
  }
  const decodeStart = performance.now();

  while (next >= 0) {
    const { piece, finish } = stream.push(next);
    if (finish) {
      finishReason = finish;
      break;
    }
    if (piece) request.onText?.(piece);
    if (stream.tokenIds.length >= maxTokens) break;
    next = await step([next], promptTokenIds.length + stream.tokenIds.length - 1);
  }
  const rest = stream.flush();
  if (rest) request.onText?.(rest);
  const end = performance.now();
  const generated = stream.tokenIds;
  return {
    text: stream.text,
    tokenIds: generated,
    promptTokenIds,
    finishReason,
    msPerToken: generated.length > 0 ? (end - decodeStart) / generated.length : 0,
    prefillMs: decodeStart - prefillStart,
  };
}
