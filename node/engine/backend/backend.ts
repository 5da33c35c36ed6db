import type { LoraAdapter } from "../adapter/lora.ts";
import type { ModelConfig } from "../model/config.ts";

/**
 * What one sequence feeds into one forward step: a chunk of prompt (prefill) or the last sampled token (decode).
 * Its KV entries live in the backend's paged pool: position p of the sequence is row (p % blockSize) of block
 * blockTable[floor(p / blockSize)]. The step writes K/V for positions [position, position + tokens.length).
 */
export interface SequenceStep {
  /** The new tokens of this sequence in this step (at least one). */
  tokens: readonly number[];
  /** Position of tokens[0]: the number of tokens of this sequence already in the KV cache. */
  position: number;
  /** KV block ids covering positions 0 .. position + tokens.length - 1, in order. */
  blockTable: readonly number[];
  /** Adapter slot whose LoRA applies to every row of this sequence, or -1 for the base model. */
  slot: number;
}

/** How to pick the next token from one sequence's logits. temperature 0 means greedy (argmax). */
export interface SamplingParams {
  temperature: number;
  /** Keep the k most likely tokens; 0 keeps all. */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches topP; 1 keeps all. */
  topP: number;
}

/** Sizes a backend is created with. */
export interface BackendOptions {
  /** KV pool: numBlocks blocks of blockSize positions each, for all layers. */
  numBlocks: number;
  blockSize: number;
  /** Adapter slots resident at once, and the largest rank a slot holds. */
  adapterSlots: number;
  maxRank: number;
}

/**
 * One backbone model on one device. The cpu backend is the reference with exact semantics; every other
 * backend must give the same outputs within a stated tolerance. A batch may mix sequences of different
 * adapters (segmented by slot: SGMV) and sequences with none.
 */
export interface Backend {
  readonly kind: "cpu" | "webgpu" | "simd";
  /** Human description of the device ("cpu", or the WebGPU adapter's vendor and name). */
  readonly device: string;
  readonly config: ModelConfig;
  readonly options: BackendOptions;
  /** Bytes of device memory held for weights, KV pool and adapter slots. */
  readonly memoryBytes: number;
  /** Puts an adapter into a slot (null empties it). Its rank must not exceed options.maxRank. */
  setAdapter(slot: number, adapter: LoraAdapter | null): Promise<void>;
  /** Runs one step; returns the logits of each sequence's last token, [steps.length, vocabSize]. */
  forward(steps: readonly SequenceStep[]): Promise<Float32Array>;
  /**
   * Runs one step and samples each sequence's next token on the device, reading back only ids.
   * uniforms[i] in [0, 1) is sequence i's random draw (from its seeded generator); sampling/sample.ts states
   * how a draw selects a token, and every backend follows it.
   */
  sample(
    steps: readonly SequenceStep[],
    params: readonly SamplingParams[],
    uniforms: Float32Array,
  ): Promise<Int32Array>;
  /** Frees the device resources. */
  close(): Promise<void>;
}
