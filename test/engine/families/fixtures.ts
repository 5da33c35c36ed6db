// Random models of each family written in both file forms (Hugging Face folder and GGUF), and the helpers the
// family suites share: logits of every position through a backend, and their comparison.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Backend } from "../../../node/engine/backend/backend.ts";
import { writeGgufModel } from "../../../node/engine/formats/gguf-write.ts";
import { writeHfModel } from "../../../node/engine/formats/hf-write.ts";
import {
  MODEL_PRESETS,
  presetModel,
  type FamilyModel,
  type ModelPreset,
  type ModelShape,
} from "../../../node/engine/formats/model-presets.ts";
import { argmax, relDiff } from "../../../scripts/gpu/parity-lib.ts";

export { argmax, relDiff };

export { MODEL_PRESETS, type ModelPreset };

/** Backend sizes for the family suites: 24 blocks of 8 positions, 2 adapter slots of rank 8. */
export const OPTIONS = { numBlocks: 24, blockSize: 8, adapterSlots: 2, maxRank: 8 };

/**
 * Tiny shapes that still show each feature: grouped-query heads, head_dim != dim / heads where the family allows
 * it (Qwen3, Gemma 2: 4 x 12 = 48 != 32), Gemma 2's window of 5 shorter than the test sequences.
 */
export function familyShape(preset: ModelPreset): ModelShape {
  const explicitHead = preset === "qwen3" || preset === "gemma2";
  return {
    layers: 2,
    dim: 32,
    hidden: 48,
    heads: 4,
    kvHeads: 2,
    headDim: explicitHead ? 12 : undefined,
    vocab: 400,
    context: 64,
    slidingWindow: 5,
  };
}

export interface FamilyFixture {
  preset: ModelPreset;
  model: FamilyModel;
  /** The Hugging Face folder and the GGUF file of the same random model. */
  hf: string;
  gguf: string;
}

const written = new Map<string, FamilyFixture>();

/** The preset's random model written in both forms (once per preset and seed). */
export function familyFixture(preset: ModelPreset, seed = 7): FamilyFixture {
  const key = `${preset}/${seed}`;
  let fixture = written.get(key);
  if (!fixture) {
    const dir = mkdtempSync(join(tmpdir(), `openlora-${preset}-`));
    const model = presetModel(preset, familyShape(preset), seed, `test/${preset}`);
    fixture = { preset, model, hf: join(dir, "hf"), gguf: join(dir, `${preset}.gguf`) };
    writeHfModel(fixture.hf, model);
    writeGgufModel(fixture.gguf, model.input, { dtype: "f32" });
    written.set(key, fixture);
  }
  return fixture;
}

/** The logits after each token, fed one at a time from position 0 (decode steps over the paged cache). */
export async function stepLogits(backend: Backend, tokens: readonly number[], slot = -1): Promise<Float32Array[]> {
  const blockTable = Array.from({ length: Math.ceil(tokens.length / OPTIONS.blockSize) }, (_, i) => i);
  const out: Float32Array[] = [];
  for (let p = 0; p < tokens.length; p++)
    out.push(await backend.forward([{ tokens: [tokens[p]], position: p, blockTable, slot }]));
  return out;
}

/** The logits of the last token after one prefill of all of them. */
export async function prefillLogits(backend: Backend, tokens: readonly number[], slot = -1): Promise<Float32Array> {
  const blockTable = Array.from({ length: Math.ceil(tokens.length / OPTIONS.blockSize) }, (_, i) => i);
  return backend.forward([{ tokens, position: 0, blockTable, slot }]);
}

/** The largest relDiff over rows. */
export function maxRelDiff(a: readonly ArrayLike<number>[], b: readonly ArrayLike<number>[]): number {
  return Math.max(...a.map((row, i) => relDiff(row, b[i])));
}

/** Greedy continuation: `steps` tokens after the prompt, through forward() and argmax. */
export async function greedy(backend: Backend, prompt: readonly number[], steps: number, slot = -1): Promise<number[]> {
  const blockTable = Array.from({ length: Math.ceil((prompt.length + steps) / OPTIONS.blockSize) }, (_, i) => i);
  let logits = await backend.forward([{ tokens: prompt, position: 0, blockTable, slot }]);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    const next = argmax(logits);
    out.push(next);
    logits = await backend.forward([{ tokens: [next], position: prompt.length + i, blockTable, slot }]);
  }
  return out;
}

/** A 14-token prompt of ordinary ids (every vocabulary here has at least 300 normal tokens). */
export const PROMPT = [17, 250, 33, 101, 280, 65, 66, 299, 120, 5, 77, 140, 260, 42];
