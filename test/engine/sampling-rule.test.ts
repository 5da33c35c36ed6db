// The sampling rule of node/engine/sampling/sample.ts, case by case at its edges (exact ties with top-p, tokens
// of zero or tiny probability, logits that would overflow exp, a draw that float32 rounds up to 1), and as a
// property against a second implementation of the documented rule written another way (kept set by ranking token
// ids, not by a probability cut). The seeded generator is held to Mulberry32 as published.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { SamplingParams } from "../../node/engine/backend/backend.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";
import { argmax, sampleToken } from "../../node/engine/sampling/sample.ts";

/** Mulberry32 as published (bryc's PRNG collection), seeded the way createRng documents: seed ^ 0x9e3779b9. */
function mulberry32(seed: number): () => number {
  let a = ((seed >>> 0) ^ 0x9e3779b9) | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The rule in sample.ts's comment, written by ranking ids: softmax of logits / temperature; rank ids by p (ties
 * by id); keep the top k ranks (all when topK is 0), then only up to the rank where the mass first reaches topP;
 * every id whose p equals the last kept rank's p is kept too; walk kept ids in increasing order until the running
 * sum exceeds u times the kept sum, or take the last kept id.
 */
function referenceSample(logits: Float32Array, params: SamplingParams, u: number): number {
  const ids = [...logits.keys()];
  if (params.temperature === 0) return ids.reduce((best, i) => (logits[i] > logits[best] ? i : best), 0);
  const max = Math.max(...logits);
  const weights = ids.map((i) => Math.exp((logits[i] - max) / params.temperature));
  const total = weights.reduce((s, w) => s + w, 0);
  const p = weights.map((w) => w / total);
  const ranked = [...ids].sort((a, b) => p[b] - p[a] || a - b);
  let size = params.topK > 0 ? Math.min(params.topK, ids.length) : ids.length;
  if (params.topP < 1) {
    let mass = 0;
    for (let r = 0; r < size; r++) {
      mass += p[ranked[r]];
      if (mass >= params.topP) {
        size = r + 1;
        break;
      }
    }
  }
  const last = p[ranked[size - 1]];
  const kept = ids.filter((i) => p[i] >= last);
  const target = u * kept.reduce((s, i) => s + p[i], 0);
  let running = 0;
  for (const i of kept) {
    running += p[i];
    if (running > target) return i;
  }
  return kept[kept.length - 1];
}

const params = (temperature: number, topK = 0, topP = 1): SamplingParams => ({ temperature, topK, topP });
const f32 = (...values: number[]) => Float32Array.from(values);

describe("createRng", () => {
  it("is Mulberry32 seeded with seed ^ 0x9e3779b9: the same draws on every machine", () => {
    for (const seed of [0, 1, 42, 2 ** 31, 2 ** 32 - 1]) {
      const ours = createRng(seed);
      const theirs = mulberry32(seed);
      for (let i = 0; i < 1000; i++) expect(ours(), `seed ${seed} draw ${i}`).toBe(theirs());
    }
  });

  it("draws in [0, 1), different streams for different seeds", () => {
    const draws = Array.from({ length: 10_000 }, createRng(5));
    expect(draws.every((u) => u >= 0 && u < 1)).toBe(true);
    expect(Math.min(...draws)).toBeLessThan(0.001);
    expect(Math.max(...draws)).toBeGreaterThan(0.999);
    expect(createRng(6)()).not.toBe(createRng(5)());
  });
});

describe("sampleToken at the edges of the rule", () => {
  // p ~ [0.5, 0.25, 0.25]; p0 below is the top token's probability to the last bit (the same float operations).
  const halves = f32(0, -Math.LN2, -Math.LN2);
  const quarter = Math.exp(Math.fround(-Math.LN2));
  const p0 = 1 / (1 + quarter + quarter);

  it("top-p stops at the token whose mass reaches topP exactly", () => {
    for (const u of [0, 0.5, 0.9, 0.999]) expect(sampleToken(halves, params(1, 0, p0), u)).toBe(0);
    // Just above p0 the mass must reach into the tie at ~0.25, and the whole tie is kept.
    expect(sampleToken(halves, params(1, 0, p0 + 1e-6), 0.9)).toBe(2);
  });

  it("top-k keeps the k largest, and a draw walks them in id order by their own share", () => {
    const logits = f32(0, 1, 2, 3); // p ~ [0.032, 0.087, 0.237, 0.644]
    const p = [0, 1, 2, 3].map((x) => Math.exp(x - 3));
    const kept = p[2] + p[3];
    expect(sampleToken(logits, params(1, 2), 0)).toBe(2);
    expect(sampleToken(logits, params(1, 2), (p[2] / kept) * 0.999)).toBe(2);
    expect(sampleToken(logits, params(1, 2), (p[2] / kept) * 1.001)).toBe(3);
    expect(sampleToken(logits, params(1, 1), 0.999)).toBe(3);
  });

  it("gives a token of tiny probability its share of the draw, and one of zero probability none", () => {
    // id 0 has p ~ 4e-18 (kept: topP 1 keeps all) and comes first in id order: a draw of 0 lands on it.
    expect(sampleToken(f32(-30, 10, 0), params(1), 0)).toBe(0);
    // exp(-1000) is 0: such a token is never drawn, even by a draw of 0.
    expect(sampleToken(f32(-1000, 0, 0), params(1), 0)).toBe(1);
  });

  it("does not overflow on large logits (softmax shifted by the max)", () => {
    const big = f32(1000, 999, 0);
    expect(sampleToken(big, params(1), 0.5)).toBe(0);
    expect(sampleToken(big, params(1), 0.9)).toBe(1);
    expect(sampleToken(big, params(0.5, 0, 0.8), 0.9)).toBe(0); // p ~ [0.88, 0.12]: top-p 0.8 keeps only 0
  });

  it("takes the last kept token when the draw reaches the end (a float32 draw can round up to 1)", () => {
    const u = Math.fround(1 - 2 ** -30);
    expect(u).toBe(1);
    expect(sampleToken(f32(3, 1, 2, 0), params(1, 2), u)).toBe(2);
    expect(sampleToken(f32(3, 1, 2, 0), params(1), u)).toBe(3);
  });

  it("argmax is the lowest index among equal maxima, whatever the length", () => {
    expect(argmax(f32(7))).toBe(0);
    expect(argmax(f32(1, 9, 9, 2))).toBe(1);
    expect(argmax(f32(-5, -5, -1))).toBe(2);
  });
});

describe("sampleToken as a property", () => {
  it("picks what the rule, implemented by ranking ids, picks", () => {
    const logit = fc.oneof(fc.integer({ min: -8, max: 8 }), fc.double({ min: -30, max: 30, noNaN: true }));
    fc.assert(
      fc.property(
        fc.array(logit, { minLength: 1, maxLength: 40 }),
        fc.constantFrom(0, 0.05, 0.3, 0.7, 1, 2.5),
        fc.integer({ min: 0, max: 12 }),
        fc.oneof(fc.constant(1), fc.constantFrom(0.1, 0.5, 0.9, 0.95), fc.double({ min: 0.01, max: 1, noNaN: true })),
        fc.oneof(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.constantFrom(0, 0.5, 1)),
        (values, temperature, topK, topP, u) => {
          const logits = Float32Array.from(values);
          const p = params(temperature, topK, topP);
          expect(sampleToken(logits, p, u)).toBe(referenceSample(logits, p, u));
        },
      ),
      { numRuns: 3000, seed: 17 },
    );
  });
});
