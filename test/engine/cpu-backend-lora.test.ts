// The cpu backend's LoRA path and step checks on a tiny random model built in memory (2 layers, dim 32), fast
// enough to run under every mutant of the engine-cpu-backend mutation scope (stryker.scopes.mjs), where the
// stories260K versions of these tests (cpu-backend.test.ts) are too slow. Unmerged LoRA must equal the merged
// weights W + B A; a batch that mixes adapters and base rows at every offset must give each sequence what it gives
// alone; a prefill must equal feeding the same tokens one at a time, and a sequence must write K/V only into its own
// blocks; steps that would read outside the pool, the context, the vocabulary or the slots are refused by name.
import { describe, expect, it } from "vitest";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import type { Backend, SequenceStep } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import { randomModel } from "../../node/engine/formats/random-model.ts";
import { dequantize, float32Matrix } from "../../node/engine/formats/weight-codec.ts";
import {
  LINEAR_TARGETS,
  projectionShape,
  type LinearTarget,
  type ModelConfig,
} from "../../node/engine/model/config.ts";
import type { LayerMatrixKey, ModelWeights } from "../../node/engine/model/weights.ts";
import { argmax, relDiff } from "../../scripts/gpu/parity-lib.ts";
import { randomLora } from "../../scripts/bench/random-adapters.ts";

/** Grouped-query heads (4 over 2) and a hidden width unlike dim, so a swapped shape does not line up by chance. */
const CONFIG: ModelConfig = {
  dim: 32,
  hiddenDim: 48,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 8,
  vocabSize: 300,
  maxSeqLen: 32,
  normEps: 1e-5,
  ropeTheta: 10000,
};
/** Blocks of 4 positions, so a prompt of 6 tokens spans two blocks. */
const OPTIONS = { numBlocks: 24, blockSize: 4, adapterSlots: 3, maxRank: 4 };
// Merged and unmerged LoRA round differently in float32: relative to max(1, max |logit|).
const MERGE_TOLERANCE = 1e-5;
// A LoRA must move the logits by more than this, or the comparisons above would not see it.
const ADAPTER_EFFECT = 1e-3;

const WEIGHT_OF: Record<LinearTarget, LayerMatrixKey> = {
  q: "wq",
  k: "wk",
  v: "wv",
  o: "wo",
  gate: "wGate",
  up: "wUp",
  down: "wDown",
};

// Larger weights than randomModel's default 0.02, so that every layer moves the logits visibly.
const { weights: WEIGHTS } = randomModel(CONFIG, 5, { tiedClassifier: false, scale: 0.2 });

/** A rank-4 adapter with random A and B on `targets` of every layer (the scale already in B). */
const randomAdapter = (targets: readonly LinearTarget[], seed: number): LoraAdapter =>
  randomLora(CONFIG, { rank: 4, targets, seed, bScale: 0.3 }).adapter;

/** W' = W + B A for every pair of the adapter: the merged model the unmerged path must equal. */
function merged(weights: ModelWeights, adapter: LoraAdapter): ModelWeights {
  const layers = weights.layers.map((layer, l) => {
    const mergedLayer = { ...layer };
    for (const [target, pair] of Object.entries(adapter.layers[l])) {
      const { inDim, outDim } = projectionShape(CONFIG, target as LinearTarget);
      const key = WEIGHT_OF[target as LinearTarget];
      const w = Float32Array.from(dequantize(layer[key]));
      for (let o = 0; o < outDim; o++) {
        for (let i = 0; i < inDim; i++) {
          let sum = 0;
          for (let r = 0; r < pair.rank; r++) sum += pair.b[o * pair.rank + r] * pair.a[r * inDim + i];
          w[o * inDim + i] += sum;
        }
      }
      mergedLayer[key] = float32Matrix(outDim, inDim, w);
    }
    return mergedLayer;
  });
  return { ...weights, layers };
}

/** A prompt prefilled in one step, then greedy decode steps; the logits of every step. */
async function trace(backend: Backend, prompt: number[], slot: number, decode: number): Promise<Float32Array[]> {
  const blockTable = [0, 1, 2, 3];
  const out = [await backend.forward([{ tokens: prompt, position: 0, blockTable, slot }])];
  for (let i = 0; i < decode; i++) {
    const step = { tokens: [argmax(out[out.length - 1])], position: prompt.length + i, blockTable, slot };
    out.push(await backend.forward([step]));
  }
  return out;
}

const PROMPT = [1, 40, 7, 33, 12, 60];

describe("cpu backend, LoRA unmerged (tiny random model)", () => {
  for (const targets of [...LINEAR_TARGETS.map((t) => [t]), LINEAR_TARGETS]) {
    it(`LoRA on ${targets.join(", ")} equals the merged weights W + BA, prefill and decode`, async () => {
      const adapter = randomAdapter(targets, 3);
      const unmerged = createCpuBackend(WEIGHTS, OPTIONS);
      await unmerged.setAdapter(2, adapter);
      const a = await trace(unmerged, PROMPT, 2, 4);
      const b = await trace(createCpuBackend(merged(WEIGHTS, adapter), OPTIONS), PROMPT, -1, 4);
      a.forEach((logits, i) => expect(relDiff(logits, b[i]), `step ${i}`).toBeLessThan(MERGE_TOLERANCE));
      const base = await trace(createCpuBackend(WEIGHTS, OPTIONS), PROMPT, -1, 0);
      expect(relDiff(a[0], base[0])).toBeGreaterThan(ADAPTER_EFFECT);
    });
  }

  it("a batch mixing adapters and base rows, prefill then decode, gives each sequence what it gives alone", async () => {
    const adapters = [0, 1, 2].map((seed) => randomAdapter(LINEAR_TARGETS, 10 + seed));
    // Adapter rows at offset 0 and after other rows, of one token and of several, next to base rows.
    const sequences = [
      { prompt: [1, 5, 9], slot: 0 },
      { prompt: [1, 22], slot: -1 },
      { prompt: [1, 40, 7, 33, 12], slot: 1 },
      { prompt: [1], slot: 2 },
      { prompt: [1, 5, 9], slot: -1 },
      { prompt: [1, 60, 61, 62], slot: 0 },
    ].map((s, i) => ({ ...s, blockTable: [3 * i, 3 * i + 1, 3 * i + 2] }));
    const backend = createCpuBackend(WEIGHTS, OPTIONS);
    for (const [slot, adapter] of adapters.entries()) await backend.setAdapter(slot, adapter);
    // Alone: each on a fresh backend with the same slots, so nothing in the shared pool can help.
    const alone: Float32Array[][] = [];
    for (const s of sequences) {
      const single = createCpuBackend(WEIGHTS, OPTIONS);
      for (const [slot, adapter] of adapters.entries()) await single.setAdapter(slot, adapter);
      alone.push(await trace(single, s.prompt, s.slot, 3));
    }
    // Every sequence's adapter (or none) changes its output: a row given another's adapter would show.
    expect(relDiff(alone[0][0], alone[4][0])).toBeGreaterThan(ADAPTER_EFFECT);

    const vocab = CONFIG.vocabSize;
    const positions = sequences.map((s) => s.prompt.length);
    const prefill: SequenceStep[] = sequences.map((s) => ({ ...s, tokens: s.prompt, position: 0 }));
    let logits = await backend.forward(prefill);
    for (let step = 0; step <= 3; step++) {
      sequences.forEach((_, i) =>
        expect(logits.subarray(i * vocab, (i + 1) * vocab), `sequence ${i} step ${step}`).toEqual(alone[i][step]),
      );
      if (step === 3) break;
      logits = await backend.forward(
        sequences.map((s, i) => ({
          tokens: [argmax(alone[i][step])],
          position: positions[i]++,
          blockTable: s.blockTable,
          slot: s.slot,
        })),
      );
    }
  });
});

describe("cpu backend, positions and the KV cache (tiny random model)", () => {
  it("a prompt prefilled in one step gives the logits of feeding it one token at a time", async () => {
    const backend = createCpuBackend(WEIGHTS, OPTIONS);
    const prefilled = await backend.forward([{ tokens: PROMPT, position: 0, blockTable: [0, 1], slot: -1 }]);
    let stepped: Float32Array = new Float32Array(0);
    for (const [p, token] of PROMPT.entries())
      stepped = await backend.forward([{ tokens: [token], position: p, blockTable: [2, 3], slot: -1 }]);
    expect(relDiff(prefilled, stepped)).toBeLessThan(MERGE_TOLERANCE);
  });

  it("a sequence whose prompt fills its block table exactly writes nothing outside it", async () => {
    // The first sequence's 4 tokens fill its one block; the second's cache (block 0) must stay its own.
    const batched = createCpuBackend(WEIGHTS, OPTIONS);
    const other = { tokens: [1, 22, 23], position: 0, blockTable: [0], slot: -1 };
    await batched.forward([{ tokens: [1, 5, 9, 13], position: 0, blockTable: [5], slot: -1 }, other]);
    const alone = createCpuBackend(WEIGHTS, OPTIONS);
    await alone.forward([other]);
    const next = { tokens: [24], position: 3, blockTable: [0], slot: -1 };
    expect(await batched.forward([next])).toEqual(await alone.forward([next]));
  });
});

describe("cpu backend refuses steps it cannot compute", () => {
  const backend = createCpuBackend(WEIGHTS, OPTIONS);
  const step: SequenceStep = { tokens: [1, 2], position: 0, blockTable: [0], slot: -1 };
  const refusals: [string, SequenceStep[], RegExp][] = [
    ["no sequence", [], /forward needs at least one sequence/],
    [
      "a block table too short for the positions",
      [{ ...step, position: 3 }],
      /block table has 1 blocks, positions up to 4/,
    ],
    [
      "a block outside the pool",
      [step, { ...step, blockTable: [24] }],
      /sequence 1: KV block 24 outside the pool \(0\.\.23\)/,
    ],
    [
      "a token outside the vocabulary",
      [{ ...step, tokens: [1, 300] }],
      /token 300 outside the vocabulary \(0\.\.299\)/,
    ],
    [
      "positions past the context",
      [{ ...step, position: 31, blockTable: [0, 1, 2, 3, 4, 5, 6, 7] }],
      /positions 31\.\.32 outside the context \(32\)/,
    ],
    ["an adapter slot that does not exist", [{ ...step, slot: 3 }], /adapter slot 3 outside 0\.\.2/],
  ];
  for (const [what, steps, message] of refusals) {
    it(`refuses ${what}, in forward and in sample`, async () => {
      await expect(backend.forward(steps)).rejects.toThrow(message);
      const greedy = steps.map(() => ({ temperature: 0, topK: 0, topP: 1 }));
      await expect(backend.sample(steps, greedy, new Float32Array(steps.length))).rejects.toThrow(message);
    });
  }
});
