import { describe, expect, it } from "vitest";
import { InvalidRequestError } from "../../node/engine/errors.ts";
import { BlockAllocator } from "../../node/engine/kv/block-allocator.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";
import { argmax, sampleToken } from "../../node/engine/sampling/sample.ts";
import { oneShotEngine } from "../helpers/stories.ts";

const logits = Float32Array.from([1, 3, 2, 3, -1]);

describe("sampleToken", () => {
  it("greedy takes the argmax, the lowest id among equal maxima", () => {
    expect(sampleToken(logits, { temperature: 0, topK: 0, topP: 1 }, 0.99)).toBe(1);
    expect(argmax(Float32Array.from([0, 5, 5]))).toBe(1);
  });
  it("top-k 1 is greedy whatever the draw", () => {
    for (const u of [0, 0.3, 0.999])
      expect(sampleToken(Float32Array.from([1, 4, 2]), { temperature: 1, topK: 1, topP: 1 }, u)).toBe(1);
  });
  it("walks the kept tokens in id order with the draw", () => {
    const params = { temperature: 1, topK: 0, topP: 1 };
    const p = [...logits].map(Math.exp);
    const total = p.reduce((a, b) => a + b);
    expect(sampleToken(logits, params, 0)).toBe(0);
    expect(sampleToken(logits, params, (p[0] + 0.5 * p[1]) / total)).toBe(1);
    expect(sampleToken(logits, params, 0.9999)).toBe(4);
  });
  it("top-p keeps the smallest set reaching the mass, ties at the cut included", () => {
    // p ~ [0.08, 0.42, 0.16, 0.42, 0.01]: 0.5 needs both 3s (a tie) and nothing else
    const params = { temperature: 1, topK: 0, topP: 0.5 };
    const picks = new Set(Array.from({ length: 50 }, (_, i) => sampleToken(logits, params, i / 50)));
    expect([...picks].sort()).toEqual([1, 3]);
  });
  it("temperature sharpens and flattens", () => {
    const rng = createRng(7);
    const count = (t: number) =>
      Array.from({ length: 2000 }, () => sampleToken(logits, { temperature: t, topK: 0, topP: 1 }, rng())).filter(
        (x) => x === 4,
      ).length;
    expect(count(0.1)).toBe(0);
    expect(count(10)).toBeGreaterThan(200);
  });
});

describe("one-shot generation through the engine", () => {
  const engineFor = oneShotEngine();

  it("is reproducible with a seed and varies across seeds", async () => {
    const run = async (seed: number) =>
      (await engineFor()).complete({ prompt: "Once upon a time", maxTokens: 40, temperature: 1, topP: 0.9, seed });
    const a = await run(1);
    expect((await run(1)).tokenIds).toEqual(a.tokenIds);
    expect((await run(2)).tokenIds).not.toEqual(a.tokenIds);
  });

  it("stops at max tokens, at a stop string (text cut before it) and streams what it returns", async () => {
    const { complete } = await engineFor();
    const long = await complete({ prompt: "Once upon a time", maxTokens: 30, temperature: 0 });
    expect(long.tokenIds).toHaveLength(30);
    expect(long.usage.finishReason).toBe("length");
    let streamed = "";
    const stopped = await complete(
      { prompt: "Once upon a time", maxTokens: 30, temperature: 0, stop: ["Lily"] },
      (t) => {
        streamed += t;
      },
    );
    expect(stopped.usage.finishReason).toBe("stop");
    expect(stopped.text).toBe(long.text.slice(0, long.text.indexOf("Lily")));
    expect(streamed).toBe(stopped.text);
  });

  it("stops at EOS", async () => {
    const { complete, model } = await engineFor();
    // Greedy from BOS ends the first story with EOS/BOS after enough tokens; find where and stop there.
    const result = await complete({ prompt: "", maxTokens: 500, temperature: 0 });
    expect(result.usage.finishReason).toBe("eos");
    expect(result.tokenIds).not.toContain(model.tokenizer.eosId);
  });

  it("refuses invalid sampling values and prompts longer than the context", async () => {
    const { complete } = await engineFor();
    const base = { prompt: "x", maxTokens: 5, temperature: 1 };
    await expect(complete({ ...base, temperature: -1 })).rejects.toThrow(/temperature must be a finite number >= 0/);
    await expect(complete({ ...base, topP: 0 })).rejects.toThrow(/top_p must be in \(0, 1\]/);
    await expect(complete({ ...base, topK: 1.5 })).rejects.toThrow(/top_k must be a non-negative integer/);
    await expect(complete({ ...base, maxTokens: -3 })).rejects.toThrow(InvalidRequestError);
    const huge = Array.from({ length: 600 }, () => 300);
    await expect(complete({ tokenIds: [1, ...huge], maxTokens: 5 })).rejects.toThrow(
      /prompt has 601 tokens, the context holds 512/,
    );
  });
});

describe("BlockAllocator", () => {
  it("grows tables all-or-nothing and takes blocks back", () => {
    const kv = new BlockAllocator(4, 16);
    const a: number[] = [];
    expect(kv.grow(a, 40)).toBe(true);
    expect(a).toEqual([0, 1, 2]);
    const b: number[] = [];
    expect(kv.grow(b, 33)).toBe(false);
    expect(b).toEqual([]);
    expect(kv.freeBlocks).toBe(1);
    kv.release(a);
    expect(a).toEqual([]);
    expect(kv.freeBlocks).toBe(4);
  });
});
