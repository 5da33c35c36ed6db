// Weights kept in their file precision: block codecs against their error bounds, GGUF files of every dtype
// loading back without widening, and the float32 view the reference backends take.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GgufReader } from "../../node/engine/formats/gguf-read.ts";
import { GGML_TYPE, GGUF_TENSOR } from "../../node/engine/formats/gguf-types.ts";
import { writeGgufModel } from "../../node/engine/formats/gguf-write.ts";
import { halfToFloat } from "../../node/engine/formats/half.ts";
import { loadModel } from "../../node/engine/formats/load-model.ts";
import { randomModel, randomModelInput } from "../../node/engine/formats/random-model.ts";
import {
  WEIGHT_DTYPES,
  dequantize,
  dequantizeRows,
  float32Weights,
  quantizeMatrix,
  quantizeQ4_0,
  rowBytes,
  weightBytes,
} from "../../node/engine/formats/weight-codec.ts";
import type { ModelConfig } from "../../node/engine/model/config.ts";
import type { WeightDType } from "../../node/engine/model/weights.ts";
import { scratchDir } from "./formats-helpers.ts";

const tiny: ModelConfig = {
  dim: 64,
  hiddenDim: 128,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 16,
  vocabSize: 300,
  maxSeqLen: 64,
  normEps: 1e-5,
  ropeTheta: 10000,
};

/** Largest error each dtype may make on a value, given the largest magnitude in its 32-block. */
const BOUND: Partial<Record<WeightDType, (x: number, amax: number) => number>> = {
  f32: () => 0,
  f16: (x) => Math.abs(x) * 2 ** -11 + 2 ** -25,
  bf16: (x) => Math.abs(x) * 2 ** -8,
  q8_0: (_, amax) => amax / 254 + amax * 2 ** -11 + 1e-12,
  q4_0: (_, amax) => amax / 8 + amax * 2 ** -10 + 1e-12, // step amax/8, plus the f16 scale
};

describe("weight codecs", () => {
  const values = new Float32Array(8 * 64).map((_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 5) - 3));
  for (const dtype of WEIGHT_DTYPES) {
    it(`${dtype}: dequantizes within its bound, row by row as a whole`, () => {
      const m = quantizeMatrix(values, 8, 64, dtype);
      expect(m.data.length).toBe(8 * rowBytes(dtype, 64));
      const back = dequantize(m);
      for (let b = 0; b < values.length / 32; b++) {
        const block = values.subarray(32 * b, 32 * b + 32);
        const amax = Math.max(...block.map(Math.abs));
        block.forEach((x, j) =>
          expect(Math.abs(back[32 * b + j] - x), `${dtype} at ${32 * b + j}`).toBeLessThanOrEqual(
            BOUND[dtype]!(x, amax),
          ),
        );
      }
      expect(dequantizeRows(m, 3, 2)).toEqual(back.subarray(3 * 64, 5 * 64));
    });
  }

  it("q4_0 packs like llama.cpp: d = -max/8, element j low nibble, j + 16 high nibble", () => {
    const block = new Float32Array(32).map((_, j) => (j - 12) / 4); // max magnitude 19/4 at j = 31
    const out = new Uint8Array(18);
    quantizeQ4_0(block, out);
    const d = halfToFloat(out[0] | (out[1] << 8));
    expect(d).toBeCloseTo(-4.75 / 8, 3);
    expect(out[2 + 15] >> 4).toBe(0); // x = max -> (x / d) + 8.5 = 0.5 -> 0
    expect(out[2] & 15).toBe(Math.min(15, Math.trunc(-3 / d + 8.5)));
  });

  it("rows must be whole blocks", () => {
    expect(() => rowBytes("q8_0", 48)).toThrow("q8_0 rows need a multiple of 32 columns, got 48");
  });
});

describe("GGUF loads keep the file's precision", () => {
  const dir = scratchDir("dtypes");
  for (const dtype of WEIGHT_DTYPES) {
    it(`${dtype}: matrices stay ${dtype} with the file's bytes, the float32 view matches the values`, async () => {
      const file = join(dir, `tiny-${dtype}.gguf`);
      writeGgufModel(file, randomModelInput(tiny, 5, {}, "tiny"), { dtype });
      const model = await loadModel(file);
      const wq = model.weights.layers[0].wq;
      expect([wq.dtype, wq.rows, wq.cols]).toEqual([dtype, tiny.dim, tiny.dim]);
      const reader = GgufReader.open(file);
      expect(reader.tensors.get(GGUF_TENSOR.layer(0).wq)!.type).toBe(
        GGML_TYPE[dtype.toUpperCase() as "F32" | "F16" | "BF16" | "Q8_0" | "Q4_0"],
      );
      reader.close();
      const expected = randomModel(tiny, 5, {}, dtype).weights;
      expect(Buffer.from(wq.data).equals(Buffer.from(expected.layers[0].wq.data))).toBe(true);
      expect(weightBytes(model.weights)).toBe(weightBytes(expected));
      expect(float32Weights(model.weights).layers[1].wDown).toEqual(dequantize(expected.layers[1].wDown));
    });
  }

  it("the float32 view is made once per model and keeps a tied classifier tied", () => {
    const { weights } = randomModel(tiny, 1, {}, "q8_0");
    const view = float32Weights(weights);
    expect(float32Weights(weights)).toBe(view);
    expect(view.classifier).toBe(view.tokenEmbedding);
    expect(weightBytes(weights)).toBeLessThan(weightBytes(randomModel(tiny, 1).weights) / 3);
  });
});
