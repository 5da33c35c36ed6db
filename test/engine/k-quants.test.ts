// ggml's K-quants (Q4_K, Q6_K) in the weight codec and the GGUF loader: the decoders follow ggml's
// dequantize_row_q4_K / _q6_K on hand-built blocks, the (plain, not llama.cpp's) quantizers stay within their
// bound, and a GGUF of either type loads with its blocks kept as the file has them.
// Bounds, per element, against the largest magnitude amax of its super-block of 256: Q4_K amax / 12 (half a step
// of 16 levels over a sub-block's range of at most 2 amax, plus the 6-bit scale and min rounding); Q6_K amax / 50
// (half a step of amax / 31, plus the int8 scale rounding).
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GgufReader } from "../../node/engine/formats/gguf-read.ts";
import { GGML_TYPE, GGUF_TENSOR } from "../../node/engine/formats/gguf-types.ts";
import { writeGgufModel } from "../../node/engine/formats/gguf-write.ts";
import { floatToHalf } from "../../node/engine/formats/half.ts";
import { loadModel } from "../../node/engine/formats/load-model.ts";
import { randomModel, randomModelInput } from "../../node/engine/formats/random-model.ts";
import { dequantize, quantizeMatrix, weightMatrix } from "../../node/engine/formats/weight-codec.ts";
import { PARITY_CONFIG } from "../../scripts/gpu/parity-lib.ts";
import { scratchDir } from "./formats-helpers.ts";

function half(value: number, out: Uint8Array, at: number): void {
  const h = floatToHalf(value);
  out[at] = h & 0xff;
  out[at + 1] = h >> 8;
}

describe("K-quant decoders follow ggml's layouts", () => {
  it("Q4_K: x = d * scale * q - dmin * min, 6-bit scales and mins of 8 sub-blocks of 32, low then high nibbles", () => {
    const sc = [10, 17, 24, 31, 38, 45, 52, 59]; // above 15: the upper 2 bits go through the packed bytes
    const mn = [60, 53, 46, 39, 32, 25, 18, 11];
    const block = new Uint8Array(144);
    half(0.25, block, 0);
    half(0.5, block, 2);
    for (let j = 0; j < 4; j++) {
      block[4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
      block[8 + j] = mn[j] | ((mn[j + 4] >> 4) << 6);
      block[12 + j] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
    }
    const q = (e: number): number => (e * 7) % 16;
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) block[16 + 32 * j + l] = q(64 * j + l) | (q(64 * j + 32 + l) << 4);
    }
    const got = dequantize(weightMatrix("q4_k", 1, 256, block));
    for (let e = 0; e < 256; e++) {
      const s = e >> 5;
      expect(got[e], `element ${e}`).toBeCloseTo(0.25 * sc[s] * q(e) - 0.5 * mn[s], 5);
    }
  });

  it("Q6_K: q = ql nibble | qh bits << 4, x = d * scale * (q - 32), int8 scales of 16 sub-blocks of 16", () => {
    const block = new Uint8Array(210);
    const signed = new Int8Array(block.buffer);
    const scale = (s: number): number => (s % 2 ? -1 : 1) * (3 + 5 * s);
    for (let s = 0; s < 16; s++) signed[192 + s] = scale(s);
    half(0.125, block, 208);
    const L = (e: number): number => (e * 11 + 3) % 64;
    for (let n = 0; n < 2; n++) {
      for (let l = 0; l < 32; l++) {
        const e = 128 * n + l;
        block[64 * n + l] = (L(e) & 15) | ((L(e + 64) & 15) << 4);
        block[64 * n + l + 32] = (L(e + 32) & 15) | ((L(e + 96) & 15) << 4);
        block[128 + 32 * n + l] =
          (L(e) >> 4) | ((L(e + 32) >> 4) << 2) | ((L(e + 64) >> 4) << 4) | ((L(e + 96) >> 4) << 6);
      }
    }
    const got = dequantize(weightMatrix("q6_k", 1, 256, block));
    for (let e = 0; e < 256; e++) {
      expect(got[e], `element ${e}`).toBeCloseTo(0.125 * scale(e >> 4) * (L(e) - 32), 5);
    }
  });
});

describe("K-quant quantizers", () => {
  const values = new Float32Array(4 * 512).map((_, i) => Math.sin(i * 12.9898) * 10 ** ((i >> 9) - 2) + (i % 7) * 1e-3);
  for (const [dtype, divisor] of [
    ["q4_k", 12],
    ["q6_k", 50],
  ] as const) {
    it(`${dtype}: every value within amax / ${divisor} of its super-block`, () => {
      const m = quantizeMatrix(values, 4, 512, dtype);
      expect(m.data.length).toBe(4 * 2 * (dtype === "q4_k" ? 144 : 210));
      const back = dequantize(m);
      for (let b = 0; b < values.length / 256; b++) {
        const block = values.subarray(256 * b, 256 * b + 256);
        const amax = Math.max(...block.map(Math.abs));
        block.forEach((x, j) =>
          expect(Math.abs(back[256 * b + j] - x), `${dtype} at ${256 * b + j}`).toBeLessThanOrEqual(amax / divisor),
        );
      }
    });
  }

  it("rows must be whole super-blocks", () => {
    expect(() => quantizeMatrix(new Float32Array(128), 1, 128, "q4_k")).toThrow(
      "q4_k rows need a multiple of 256 columns, got 128",
    );
  });
});

describe("GGUF loads keep K-quant blocks", () => {
  const dir = scratchDir("k-quants");
  for (const [dtype, type] of [
    ["q4_k", GGML_TYPE.Q4_K],
    ["q6_k", GGML_TYPE.Q6_K],
  ] as const) {
    it(`${dtype}: the file stores ggml type ${type}, the loader keeps its bytes, the float32 view decodes them`, async () => {
      const file = join(dir, `k-${dtype}.gguf`);
      writeGgufModel(file, randomModelInput(PARITY_CONFIG, 3, {}, "k"), { dtype });
      const reader = GgufReader.open(file);
      expect(reader.tensors.get(GGUF_TENSOR.layer(1).wDown)!.type).toBe(type);
      reader.close();
      const model = await loadModel(file);
      const expected = randomModel(PARITY_CONFIG, 3, {}, dtype).weights;
      const wDown = model.weights.layers[1].wDown;
      expect([wDown.dtype, wDown.rows, wDown.cols]).toEqual([dtype, PARITY_CONFIG.dim, PARITY_CONFIG.hiddenDim]);
      expect(Buffer.from(wDown.data).equals(Buffer.from(expected.layers[1].wDown.data))).toBe(true);
      expect(model.weights.tokenEmbedding.dtype).toBe(dtype);
    });
  }
});
