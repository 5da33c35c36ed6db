import { dequantize, float32Matrix } from "../../node/engine/formats/weight-codec.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import type { Backend } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import { loadModel } from "../../node/engine/formats/load-model.ts";
import { LINEAR_TARGETS, projectionShape, type LinearTarget } from "../../node/engine/model/config.ts";
import type { LayerMatrixKey, ModelWeights } from "../../node/engine/model/weights.ts";
import { demoAdapter, oneShotEngine, STORIES_DIR, stories } from "../helpers/stories.ts";

const reference = JSON.parse(readFileSync(join(STORIES_DIR, "greedy_empty_prompt_256.json"), "utf8")) as {
  ids: number[];
  text: string;
};
const OPTIONS = { numBlocks: 64, blockSize: 16, adapterSlots: 4, maxRank: 64 };
const WEIGHT_OF: Record<LinearTarget, LayerMatrixKey> = {
  q: "wq",
  k: "wk",
  v: "wv",
  o: "wo",
  gate: "wGate",
  up: "wUp",
  down: "wDown",
};
// Merged and unmerged LoRA round differently in float32; over 5 layers the logits stay within this.
const MERGE_TOLERANCE = 1e-4;

/** Runs a prompt then `decode` greedy steps on one sequence; returns the logits of every step. */
async function logitsTrace(
  backend: Backend,
  prompt: number[],
  slot: number,
  decode: number,
  firstBlock = 0,
): Promise<Float32Array[]> {
  const blockTable = Array.from({ length: 8 }, (_, i) => firstBlock + i);
  const trace = [await backend.forward([{ tokens: prompt, position: 0, blockTable, slot }])];
  for (let i = 0; i < decode; i++) {
    const last = trace[trace.length - 1];
    const next = last.indexOf(Math.max(...last));
    trace.push(await backend.forward([{ tokens: [next], position: prompt.length + i, blockTable, slot }]));
  }
  return trace;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** W' = W + B A for one target in every layer: the merged model the unmerged path must equal. */
function mergeTarget(weights: ModelWeights, adapter: LoraAdapter, target: LinearTarget): ModelWeights {
  const { inDim, outDim } = projectionShape(weights.config, target);
  const layers = weights.layers.map((layer, l) => {
    const pair = adapter.layers[l][target]!;
    const merged = Float32Array.from(dequantize(layer[WEIGHT_OF[target]]));
    for (let o = 0; o < outDim; o++) {
      for (let i = 0; i < inDim; i++) {
        let sum = 0;
        for (let r = 0; r < pair.rank; r++) sum += pair.b[o * pair.rank + r] * pair.a[r * inDim + i];
        merged[o * inDim + i] += sum;
      }
    }
    return { ...layer, [WEIGHT_OF[target]]: float32Matrix(outDim, inDim, merged) };
  });
  return { ...weights, layers };
}

function onlyTarget(adapter: LoraAdapter, target: LinearTarget): LoraAdapter {
  return { ...adapter, targets: [target], layers: adapter.layers.map((layer) => ({ [target]: layer[target] })) };
}

describe("cpu backend on stories260K", () => {
  const binEngine = oneShotEngine();
  const ggufEngine = oneShotEngine({ model: join(STORIES_DIR, "stories260K.gguf") });

  it("reproduces llama2.c's greedy output from BOS, token for token (.bin)", async () => {
    const result = await (await binEngine()).complete({ prompt: "", maxTokens: 256, temperature: 0 });
    expect([...result.promptTokenIds, ...result.tokenIds]).toEqual(reference.ids);
    expect(result.text).toBe(reference.text);
  });

  it("reproduces it from the .gguf too", async () => {
    const result = await (await ggufEngine()).complete({ prompt: "", maxTokens: 256, temperature: 0 });
    expect([...result.promptTokenIds, ...result.tokenIds]).toEqual(reference.ids);
  });

  for (const target of LINEAR_TARGETS) {
    it(`unmerged LoRA on ${target} equals the merged weights W + BA (within ${MERGE_TOLERANCE})`, async () => {
      const model = await stories();
      const adapter = onlyTarget(await demoAdapter("dragon"), target);
      const prompt = model.tokenizer.encode("Once upon a time, a dragon", { bos: true });
      const unmerged = createCpuBackend(model.weights, OPTIONS);
      await unmerged.setAdapter(0, adapter);
      const merged = createCpuBackend(mergeTarget(model.weights, adapter, target), OPTIONS);
      const base = await logitsTrace(createCpuBackend(model.weights, OPTIONS), prompt, -1, 0);
      const a = await logitsTrace(unmerged, prompt, 0, 6);
      const b = await logitsTrace(merged, prompt, -1, 6);
      a.forEach((logits, i) => expect(maxAbsDiff(logits, b[i])).toBeLessThan(MERGE_TOLERANCE));
      expect(maxAbsDiff(a[0], base[0])).toBeGreaterThan(1e-3); // the adapter does change this target's output
    });
  }

  it("an adapter whose B is all zeros changes nothing", async () => {
    const model = await stories();
    const dragon = await demoAdapter("dragon");
    const zero: LoraAdapter = {
      ...dragon,
      layers: dragon.layers.map((layer) =>
        Object.fromEntries(Object.entries(layer).map(([t, p]) => [t, { ...p, b: new Float32Array(p.b.length) }])),
      ),
    };
    const backend = createCpuBackend(model.weights, OPTIONS);
    await backend.setAdapter(1, zero);
    const prompt = model.tokenizer.encode("The little fish", { bos: true });
    const withZero = await logitsTrace(backend, prompt, 1, 4);
    const base = await logitsTrace(backend, prompt, -1, 4, 16);
    withZero.forEach((logits, i) => expect(logits).toEqual(base[i]));
  });

  it("a batch mixing adapters and base rows gives each sequence what it gives alone", async () => {
    const model = await stories();
    const backend = createCpuBackend(model.weights, OPTIONS);
    const names = ["dragon", "ocean", "robot"] as const;
    for (const [slot, name] of names.entries()) await backend.setAdapter(slot, await demoAdapter(name));
    const seqs = [
      { prompt: "Once upon a time", slot: 0 },
      { prompt: "The sea was", slot: 1 },
      { prompt: "Tom", slot: -1 },
      { prompt: "A robot", slot: 2 },
      { prompt: "Once upon a time", slot: -1 },
      { prompt: "Lily saw a", slot: 0 },
    ].map((s, i) => ({
      ...s,
      tokens: model.tokenizer.encode(s.prompt, { bos: true }),
      blockTable: [i * 4, i * 4 + 1, i * 4 + 2, i * 4 + 3],
    }));

    const alone: Float32Array[][] = [];
    for (const s of seqs) alone.push(await logitsTrace(backend, s.tokens, s.slot, 5, 40));

    const vocab = model.weights.config.vocabSize;
    const positions = seqs.map((s) => s.tokens.length);
    let logits = await backend.forward(
      seqs.map((s) => ({ tokens: s.tokens, position: 0, blockTable: s.blockTable, slot: s.slot })),
    );
    for (let step = 0; step <= 5; step++) {
      seqs.forEach((_, i) => expect(logits.subarray(i * vocab, (i + 1) * vocab)).toEqual(alone[i][step]));
      if (step === 5) break;
      const next = seqs.map((_, i) => alone[i][step].indexOf(Math.max(...alone[i][step])));
      logits = await backend.forward(
        seqs.map((s, i) => ({ tokens: [next[i]], position: positions[i]++, blockTable: s.blockTable, slot: s.slot })),
      );
    }
  });

  it("refuses steps that would read outside the pool or the context", async () => {
    const model = await stories();
    const backend = createCpuBackend(model.weights, OPTIONS);
    await expect(backend.forward([{ tokens: [1], position: 0, blockTable: [], slot: -1 }])).rejects.toThrow(
      /block table has 0 blocks/,
    );
    await expect(backend.forward([{ tokens: [9999], position: 0, blockTable: [0], slot: -1 }])).rejects.toThrow(
      /outside the vocabulary/,
    );
    await expect(backend.forward([{ tokens: [1], position: 0, blockTable: [64], slot: -1 }])).rejects.toThrow(
      /outside the pool/,
    );
    await expect(backend.forward([{ tokens: [1], position: 0, blockTable: [0], slot: 7 }])).rejects.toThrow(
      /adapter slot 7/,
    );
    await expect(backend.setAdapter(0, await demoAdapter("dragon"))).resolves.toBeUndefined();
    const small = createCpuBackend(model.weights, { ...OPTIONS, maxRank: 4 });
    await expect(small.setAdapter(0, await demoAdapter("dragon"))).rejects.toThrow(/rank 8 exceeds the slot rank 4/);
  });
});
