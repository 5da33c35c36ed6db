// sample.wgsl against sampling/sample.ts's rule: greedy (lowest id among equal maxima), temperature, top-k, top-p
// and their combinations, on vocabularies that are not multiples of the workgroup size.
// Greedy must match exactly. A sampled id must be what sampleToken picks for the same draw u, or, where u lies
// within 1e-4 of a boundary between two tokens (the GPU sums probabilities in f32, the reference in f64), for
// u +- 1e-4.
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import type { SamplingParams } from "../../node/engine/backend/backend.ts";
import * as op from "../../node/engine/backend/webgpu/ops.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";
import { sampleToken } from "../../node/engine/sampling/sample.ts";
import { harness, random } from "./harness.ts";

const h = await harness();
afterAll(() => h.close());

let WG = 256;

async function gpuSample(logits: Float32Array[], params: SamplingParams[], u: number[]): Promise<Int32Array> {
  const vocab = logits[0].length;
  const S = logits.length;
  const data = new Float32Array(S * vocab);
  logits.forEach((l, s) => data.set(l, s * vocab));
  const sp = new Float32Array(S * 4);
  const spU = new Uint32Array(sp.buffer);
  params.forEach((p, s) => {
    sp[s * 4] = p.temperature;
    spU[s * 4 + 1] = p.topK;
    sp[s * 4 + 2] = p.topP;
    sp[s * 4 + 3] = u[s];
  });
  const ids = h.buffer(S * 4);
  await h.run(
    [{ kernel: "sample", variant: { constants: { WG } }, buffers: [h.buffer(data), h.buffer(sp), ids] }],
    (enc, [site]) => op.sample(enc, site, { S, vocab, ld: vocab }),
  );
  return h.readI32(ids, S);
}

function accept(got: number, logits: Float32Array, p: SamplingParams, u: number): boolean {
  return [u, Math.max(0, u - 1e-4), Math.min(0.99999994, u + 1e-4)].some((w) => sampleToken(logits, p, w) === got);
}

for (const wg of [256, 64])
  describe(`sample.wgsl, workgroups of ${wg}`, () => {
    beforeEach(() => {
      WG = wg;
    });
    it("greedy: the argmax, lowest id among ties, anywhere in the row", async () => {
      const rows: Float32Array[] = [];
      const vocab = 300;
      const a = random(vocab, 1);
      a[299] = 5; // max at the end
      const b = random(vocab, 2);
      b[17] = 9;
      b[200] = 9;
      b[255] = 9; // ties: lowest id wins
      const c = new Float32Array(vocab).fill(-1); // all equal: id 0
      const d = random(vocab, 3);
      d[0] = 4;
      rows.push(a, b, c, d);
      const ids = await gpuSample(
        rows,
        rows.map(() => ({ temperature: 0, topK: 0, topP: 1 })),
        rows.map(() => 0.5),
      );
      expect(Array.from(ids)).toEqual([299, 17, 0, 0]);
    });
    for (const vocab of [1, 5, 257, 512, 4099]) {
      it(`vocab ${vocab}: temperature, top-k, top-p and both, many draws`, async () => {
        const rng = createRng(vocab);
        const settings: SamplingParams[] = [
          { temperature: 1, topK: 0, topP: 1 },
          { temperature: 0.7, topK: 0, topP: 1 },
          { temperature: 1.3, topK: 5, topP: 1 },
          { temperature: 1, topK: 1, topP: 1 },
          { temperature: 0.8, topK: 0, topP: 0.9 },
          { temperature: 1, topK: 0, topP: 0.3 },
          { temperature: 0.9, topK: 40, topP: 0.95 },
          { temperature: 2, topK: vocab + 3, topP: 0.5 },
          { temperature: 0, topK: 10, topP: 0.5 },
        ];
        const logits: Float32Array[] = [];
        const params: SamplingParams[] = [];
        const u: number[] = [];
        for (let i = 0; i < 48; i++) {
          logits.push(random(vocab, vocab * 100 + i, 4));
          params.push(settings[i % settings.length]);
          u.push(rng());
        }
        const ids = await gpuSample(logits, params, u);
        ids.forEach((id, i) => {
          expect(
            accept(id, logits[i], params[i], u[i]),
            `row ${i}: gpu ${id}, cpu ${sampleToken(logits[i], params[i], u[i])} (${JSON.stringify(params[i])}, u ${u[i]})`,
          ).toBe(true);
        });
      });
    }
    it("ties at the top-k cut are all kept; draws at 0 and near 1", async () => {
      const logits = new Float32Array([1, 3, 3, 2, 3, 0, -1]);
      const p = { temperature: 1, topK: 2, topP: 1 };
      const draws = [0, 0.34, 0.5, 0.7, 0.9999];
      const ids = await gpuSample(
        draws.map(() => logits),
        draws.map(() => p),
        draws,
      );
      expect(Array.from(ids)).toEqual(draws.map((u) => sampleToken(logits, p, u)));
      expect(new Set(ids)).toEqual(new Set([1, 2, 4]));
    });
  });
