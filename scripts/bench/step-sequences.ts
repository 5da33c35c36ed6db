// The decode sequences the webgpu step benchmarks (step-profile.ts, step-pipeline.ts) run: greedy, each prefilled
// with the same kind of prompt, each in KV blocks of its own.
import type { SamplingParams, SequenceStep } from "../../node/engine/backend/backend.ts";

export const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1 };
/** Prompt tokens of every sequence, and the KV block size. */
export const PROMPT = 16;
export const BLOCK = 16;

/** `batch` sequences at position 0 holding PROMPT tokens, sequence i in blocks i x perSeq ..; slotOf(i): its slot. */
export function promptedSequences(
  batch: number,
  vocab: number,
  perSeq: number,
  slotOf: (i: number) => number = () => -1,
): SequenceStep[] {
  return Array.from({ length: batch }, (_, i) => ({
    tokens: Array.from({ length: PROMPT }, (_, t) => (7 * i + 13 * t + 1) % vocab),
    position: 0,
    blockTable: Array.from({ length: perSeq }, (_, b) => i * perSeq + b),
    slot: slotOf(i),
  }));
}
