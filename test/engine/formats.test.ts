// Model formats: llama2.c .bin, GGUF read/write, Hugging Face folders, loadModel, random models, bad input.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ModelFormatError } from "../../node/engine/errors.ts";
import { GgufReader } from "../../node/engine/formats/gguf-read.ts";
import { GGML_TYPE, GGUF_TENSOR } from "../../node/engine/formats/gguf-types.ts";
import { ggufModelInput, llamaMetadata, writeGguf, writeGgufModel } from "../../node/engine/formats/gguf-write.ts";
import { float32Weights, quantizeQ8_0 } from "../../node/engine/formats/weight-codec.ts";
import type { GgufDtype } from "../../node/engine/formats/gguf-write.ts";
import { floatToHalf, floatsToHalves, halfToFloat } from "../../node/engine/formats/half.ts";
import { readLlama2cCheckpoint } from "../../node/engine/formats/llama2c.ts";
import { loadModel, weightsProblem } from "../../node/engine/formats/load-model.ts";
import { randomModel, randomModelInput, randomTensor, randomVocab } from "../../node/engine/formats/random-model.ts";
import type { ModelConfig } from "../../node/engine/model/config.ts";
import type { LoadedModel, ModelWeights } from "../../node/engine/model/weights.ts";
import type { SentencePieceBpeTokenizer } from "../../node/engine/tokenizer/sentencepiece-bpe.ts";
import { STORIES, hfConfigJson, scratchDir, writeHfFolder } from "./formats-helpers.ts";

const BIN = join(STORIES, "stories260K.bin");
const TOK = join(STORIES, "tok512.bin");
const GGUF = join(STORIES, "stories260K.gguf");

/** Every tensor of a model with a name, for comparisons. */
function tensors(model: ModelWeights): [string, Float32Array][] {
  const w = float32Weights(model);
  const list: [string, Float32Array][] = [
    ["tokenEmbedding", w.tokenEmbedding],
    ["finalNorm", w.finalNorm],
    ["classifier", w.classifier],
  ];
  w.layers.forEach((layer, l) => {
    for (const [key, value] of Object.entries(layer)) list.push([`layers.${l}.${key}`, value]);
  });
  return list;
}

function expectSameWeights(a: ModelWeights, b: ModelWeights): void {
  const x = tensors(a);
  const y = tensors(b);
  expect(y.map(([n]) => n)).toEqual(x.map(([n]) => n));
  x.forEach(([name, data], i) => {
    expect(y[i][1].length, name).toBe(data.length);
    expect(
      Buffer.from(y[i][1].buffer, y[i][1].byteOffset, y[i][1].byteLength).equals(
        Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      ),
      name,
    ).toBe(true);
  });
}

/** Largest |a - b| / (|a| + floor) over all tensors. */
function maxRelativeError(a: ModelWeights, b: ModelWeights, floor: number): number {
  let worst = 0;
  const y = tensors(b);
  tensors(a).forEach(([, data], i) => {
    const other = y[i][1];
    for (let j = 0; j < data.length; j++)
      worst = Math.max(worst, Math.abs(data[j] - other[j]) / (Math.abs(data[j]) + floor));
  });
  return worst;
}

const spVocab = (m: LoadedModel) => (m.tokenizer as SentencePieceBpeTokenizer).vocab();

/** Catches the ModelFormatError a call throws, for checks on its file and problem. */
function formatError(fn: () => unknown): ModelFormatError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ModelFormatError);
    return error as ModelFormatError;
  }
  throw new Error("expected a ModelFormatError");
}
async function formatErrorAsync(promise: Promise<unknown>): Promise<ModelFormatError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ModelFormatError);
    return error as ModelFormatError;
  }
  throw new Error("expected a ModelFormatError");
}

/** Position of a tensor's ggml type field in a GGUF header (name, n_dims, dims, then the type). */
function tensorTypeOffset(bytes: Buffer, name: string): number {
  const at = bytes.indexOf(Buffer.from(name, "utf8"));
  const nDims = bytes.readUInt32LE(at + name.length);
  return at + name.length + 4 + 8 * nDims;
}

const tiny: ModelConfig = {
  dim: 64,
  hiddenDim: 96,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 16,
  vocabSize: 300,
  maxSeqLen: 128,
  normEps: 1e-6,
  ropeTheta: 500000,
};

describe("llama2.c checkpoint and GGUF of stories260K", () => {
  it("loads the folder as the llama2.c checkpoint with its tok512.bin", async () => {
    const model = await loadModel(STORIES);
    expect(model).toMatchObject({ name: "stories260K", source: BIN, format: "llama2c", qkBasis: "interleaved" });
    expect(model.weights.config).toEqual({
      dim: 64,
      hiddenDim: 172,
      nLayers: 5,
      nHeads: 8,
      nKvHeads: 4,
      headDim: 8,
      vocabSize: 512,
      maxSeqLen: 512,
      normEps: 1e-5,
      ropeTheta: 10000,
    });
    expect(model.weights.classifier).toBe(model.weights.tokenEmbedding); // positive vocab_size: tied
    expect(model.tokenizer.vocabSize).toBe(512);
    expect(weightsProblem(model.weights)).toBeNull();
  });

  it("the .bin and the .gguf load to identical weights, config and tokenizer", async () => {
    const bin = await loadModel(BIN);
    const gguf = await loadModel(GGUF);
    expect(gguf).toMatchObject({ format: "gguf", qkBasis: "interleaved", source: GGUF });
    // The GGUF claims context 2048 (README: the model was trained at 512); everything else is equal.
    expect({ ...gguf.weights.config, maxSeqLen: 512 }).toEqual(bin.weights.config);
    expect(gguf.weights.config.maxSeqLen).toBe(2048);
    expectSameWeights(bin.weights, gguf.weights);
    expect(gguf.weights.classifier).toBe(gguf.weights.tokenEmbedding); // its output.weight copy is shared
    expect(spVocab(gguf)).toEqual(spVocab(bin));
  });
});

describe("GGUF writer", () => {
  const tolerance: Partial<Record<GgufDtype, number>> = { f32: 0, f16: 2 ** -11, q8_0: 0 };
  for (const dtype of ["f32", "f16", "q8_0"] as const) {
    it(`round-trips stories260K as ${dtype}`, async () => {
      const source = await loadModel(BIN);
      const file = join(scratchDir("gguf"), `stories-${dtype}.gguf`);
      writeGgufModel(file, ggufModelInput(source.weights, spVocab(source), "stories260K"), { dtype });
      const back = await loadModel(file);
      expect(back).toMatchObject({ name: "stories260K", format: "gguf" });
      expect(back.weights.config).toEqual(source.weights.config); // normEps 1e-5 survives float32 metadata
      expect(spVocab(back)).toEqual(spVocab(source));
      expect(back.weights.classifier).toBe(back.weights.tokenEmbedding);
      const reader = GgufReader.open(file);
      const types = Object.fromEntries([...reader.tensors].map(([name, info]) => [name, info.type]));
      reader.close();
      expect(types[GGUF_TENSOR.layer(0).attnNorm]).toBe(GGML_TYPE.F32); // norms stay F32
      if (dtype === "f32") expectSameWeights(source.weights, back.weights);
      if (dtype === "f16") {
        expect(types[GGUF_TENSOR.layer(0).wq]).toBe(GGML_TYPE.F16);
        expect(maxRelativeError(source.weights, back.weights, 2 ** -14)).toBeLessThanOrEqual(tolerance.f16!);
      }
      if (dtype === "q8_0") {
        expect(types[GGUF_TENSOR.layer(0).wq]).toBe(GGML_TYPE.Q8_0);
        expect(types[GGUF_TENSOR.layer(0).wDown]).toBe(GGML_TYPE.F16); // 172 inputs: not whole blocks of 32
        // Q8_0 error per block is at most half a step, amax / 254, plus the f16 rounding of the scale.
        const a = float32Weights(source.weights).layers[0].wq;
        const b = float32Weights(back.weights).layers[0].wq;
        for (let block = 0; block < a.length / 32; block++) {
          const amax = Math.max(...a.subarray(32 * block, 32 * block + 32).map(Math.abs));
          for (let j = 32 * block; j < 32 * block + 32; j++)
            expect(Math.abs(a[j] - b[j])).toBeLessThanOrEqual(amax / 254 + amax * 2 ** -11 + 1e-12);
        }
      }
    });
  }

  it("writes an untied classifier as output.weight and reads it back as its own array", async () => {
    const { weights, vocab } = randomModel(tiny, 3, { tiedClassifier: false });
    const file = join(scratchDir("gguf-untied"), "tiny.gguf");
    writeGgufModel(file, ggufModelInput(weights, vocab, "tiny"), { dtype: "f32" });
    const back = await loadModel(file);
    expect(back.weights.config).toEqual(tiny);
    expect(back.weights.classifier).not.toBe(back.weights.tokenEmbedding);
    expectSameWeights(weights, back.weights);
  });

  it("quantizes Q8_0 like llama.cpp: f16 scale amax/127, round half away from zero", () => {
    const values = new Float32Array(32).map((_, i) => (i - 16) / 10);
    values[31] = 2.54;
    const out = new Uint8Array(34);
    quantizeQ8_0(values, out);
    const d = halfToFloat(out[0] | (out[1] << 8));
    expect(d).toBe(halfToFloat(floatToHalf(2.54 / 127)));
    const q = new Int8Array(out.buffer, 2, 32);
    expect(q[31]).toBe(127);
    expect(q[0]).toBe(Math.round(-1.6 / Math.fround(2.54 / 127)));
    const zeros = new Uint8Array(34);
    quantizeQ8_0(new Float32Array(32), zeros);
    expect([...zeros]).toEqual(new Array(34).fill(0));
  });

  it("bulk f16 conversion is bit-identical to floatToHalf, edge cases included", () => {
    const samples = new Float32Array([
      0,
      -0,
      1,
      -1,
      65504,
      65519.99,
      65520,
      1e-8,
      6e-8,
      6.1e-5,
      2 ** -14,
      2 ** -24,
      3e38,
      Infinity,
      -Infinity,
      NaN,
      0.1,
      1 / 3,
    ]);
    const random = new Float32Array(5000).map((_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 12) - 6));
    for (const set of [samples, random]) {
      const bulk = floatsToHalves(set);
      set.forEach((v, i) => expect(bulk[i], String(v)).toBe(floatToHalf(v)));
    }
  });
});

describe("Hugging Face folders", () => {
  it("loads config.json + model.safetensors + tokenizer.json to the canonical weights (q/k un-permuted)", async () => {
    const source = await loadModel(BIN);
    const folder = join(scratchDir("hf"), "stories-hf");
    writeHfFolder(folder, source.weights, spVocab(source), { tied: true });
    const model = await loadModel(folder);
    expect(model).toMatchObject({
      format: "safetensors",
      qkBasis: "rotate-half",
      name: "test/hf-llama",
      source: folder,
    });
    expect(model.weights.config).toEqual(source.weights.config);
    expectSameWeights(source.weights, model.weights);
    expect(model.weights.classifier).toBe(model.weights.tokenEmbedding);
    expect(model.tokenizer.encode("Once upon a time", { bos: true })).toEqual([1, 403, 407, 261, 378]);
  });

  it("loads sharded safetensors through model.safetensors.index.json with an untied lm_head", async () => {
    const { weights, vocab } = randomModel(tiny, 9, { tiedClassifier: false });
    const folder = join(scratchDir("hf-sharded"), "tiny");
    writeHfFolder(folder, weights, vocab, { tied: false, shards: 3 });
    const model = await loadModel(folder);
    expect(model.weights.config).toEqual(tiny);
    expectSameWeights(weights, model.weights);
  });
});

describe("random models", () => {
  it("are deterministic, finite, N(0, 0.02)-scaled with unit norms, and load back from GGUF", async () => {
    const a = randomModel(tiny, 42);
    const b = randomModel(tiny, 42);
    const c = randomModel(tiny, 43);
    expectSameWeights(a.weights, b.weights);
    expect(float32Weights(a.weights).layers[0].wq[0]).not.toBe(float32Weights(c.weights).layers[0].wq[0]);
    expect(weightsProblem(a.weights)).toBeNull();
    expect(a.weights.layers[1].attnNorm.every((x) => x === 1)).toBe(true);
    const wq = float32Weights(a.weights).layers[0].wq;
    const std = Math.sqrt(wq.reduce((s, x) => s + x * x, 0) / wq.length);
    expect(std).toBeGreaterThan(0.017);
    expect(std).toBeLessThan(0.023);
    expect(a.vocab.pieces).toHaveLength(tiny.vocabSize);
    expect(new Set(a.vocab.pieces).size).toBe(tiny.vocabSize);
    // randomModelInput streams the same values into a GGUF.
    const file = join(scratchDir("random"), "random.gguf");
    writeGgufModel(file, randomModelInput(tiny, 42, {}, "random-tiny"), { dtype: "f32" });
    const back = await loadModel(file);
    expect(back.name).toBe("random-tiny");
    expectSameWeights(a.weights, back.weights);
    expect(randomTensor(tiny, 42, GGUF_TENSOR.layer(1).wDown)).toEqual(float32Weights(a.weights).layers[1].wDown);
  });

  it("make a 32000-token vocabulary with distinct pieces", () => {
    const vocab = randomVocab(32000, 1);
    expect(vocab.pieces).toHaveLength(32000);
    expect(new Set(vocab.pieces).size).toBe(32000);
    expect(vocab.pieces.slice(0, 4)).toEqual(["<unk>", "<s>", "</s>", "<0x00>"]);
    expect(() => randomVocab(100, 1)).toThrow("at least 260 tokens");
  });
});

describe("bad input names the file and the problem", () => {
  it("truncated and oversized .bin", async () => {
    const dir = scratchDir("bad-bin");
    const bin = join(dir, "model.bin");
    writeFileSync(bin, readFileSync(BIN).subarray(0, 1_000_000));
    copyFileSync(TOK, join(dir, "tok512.bin"));
    const error = await formatErrorAsync(loadModel(bin));
    expect(error.file).toBe(bin);
    expect(error.problem).toMatch(/^truncated llama2.c checkpoint: 1000000 bytes, but the header .* implies 1056540$/);
    writeFileSync(bin, Buffer.concat([readFileSync(BIN), Buffer.alloc(4)]));
    expect(formatError(() => readLlama2cCheckpoint(bin)).problem).toMatch(
      /^oversized llama2.c checkpoint: 1056544 bytes/,
    );
    writeFileSync(bin, Buffer.alloc(10));
    expect(formatError(() => readLlama2cCheckpoint(bin)).message).toBe(
      `${bin}: truncated llama2.c checkpoint: 10 bytes, the header needs 28`,
    );
    writeFileSync(bin, Buffer.from(new Int32Array([64, 172, 5, 7, 4, 512, 512]).buffer));
    expect(formatError(() => readLlama2cCheckpoint(bin)).message).toContain(
      `${bin}: not a llama2.c checkpoint, header [64, 172, 5, 7, 4, 512, 512]`,
    );
  });

  it("missing tokenizer beside a .bin, in a GGUF and in a Hugging Face folder", async () => {
    const dir = scratchDir("no-tok");
    copyFileSync(BIN, join(dir, "stories260K.bin"));
    const error = await formatErrorAsync(loadModel(dir));
    expect(error.file).toBe(join(dir, "stories260K.bin"));
    expect(error.problem).toBe(`missing tokenizer: looked for tok512.bin, tokenizer.bin or tok*.bin in ${dir}`);

    const source = await loadModel(BIN);
    const gguf = join(dir, "no-tokenizer.gguf");
    const input = ggufModelInput(source.weights, spVocab(source), "x");
    const metadata = llamaMetadata(input, "f32").filter(([key]) => !key.startsWith("tokenizer."));
    writeGguf(gguf, metadata, [
      { name: GGUF_TENSOR.finalNorm, dims: [64], type: GGML_TYPE.F32, data: () => source.weights.finalNorm },
    ]);
    expect((await formatErrorAsync(loadModel(gguf))).message).toBe(
      `${gguf}: missing tokenizer: metadata tokenizer.ggml.model is absent`,
    );

    const hf = join(dir, "hf");
    writeHfFolder(hf, source.weights, spVocab(source), { tied: true });
    rmSync(join(hf, "tokenizer.json"));
    expect((await formatErrorAsync(loadModel(hf))).message).toBe(
      `${join(hf, "tokenizer.json")}: missing tokenizer: no tokenizer.json in ${hf}`,
    );
  });

  it("truncated GGUF, wrong magic, unsupported and unknown tensor types", async () => {
    const dir = scratchDir("bad-gguf");
    const bytes = readFileSync(GGUF);
    const cut = join(dir, "cut.gguf");
    writeFileSync(cut, bytes.subarray(0, 600_000));
    const truncated = await formatErrorAsync(loadModel(cut));
    expect(truncated.file).toBe(cut);
    expect(truncated.problem).toMatch(/^truncated GGUF: tensor \S+ needs bytes \d+\.\.\d+, file has 600000$/);
    writeFileSync(cut, bytes.subarray(0, 5000)); // cut inside the metadata
    expect((await formatErrorAsync(loadModel(cut))).problem).toMatch(
      /^truncated GGUF: tokenizer\.ggml\.tokens\[\d+\]( length)? at byte \d+ needs \d+ bytes, file has 5000$/,
    );

    const magic = join(dir, "magic.gguf");
    const wrong = Buffer.from(bytes);
    wrong.write("GGUX", 0);
    writeFileSync(magic, wrong);
    expect((await formatErrorAsync(loadModel(magic))).message).toBe(
      `${magic}: not a GGUF file: magic 0x58554747, expected "GGUF"`,
    );

    const q4 = join(dir, "q4k.gguf");
    const patched = Buffer.from(bytes);
    patched.writeUInt32LE(13, tensorTypeOffset(patched, "blk.0.attn_q.weight")); // Q5_K
    writeFileSync(q4, patched);
    expect((await formatErrorAsync(loadModel(q4))).message).toBe(
      `${q4}: tensor blk.0.attn_q.weight has type Q5_K, which this engine does not read (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K are supported)`,
    );
    // A type it reads, on a row that is not a whole number of its blocks (Q4_K: 256 columns, stories260K has 64).
    patched.writeUInt32LE(12, tensorTypeOffset(patched, "blk.0.attn_q.weight"));
    writeFileSync(q4, patched);
    expect((await formatErrorAsync(loadModel(q4))).problem).toContain(
      "tensor blk.0.attn_q.weight: Q4_K needs the first dimension to be a multiple of 256, got [64,64]",
    );
    patched.writeUInt32LE(99, tensorTypeOffset(patched, "blk.0.attn_q.weight"));
    writeFileSync(q4, patched);
    expect((await formatErrorAsync(loadModel(q4))).problem).toContain("has type unknown type 99");
  });

  it("tensor shapes that do not match the config (GGUF metadata, safetensors)", async () => {
    const source = await loadModel(BIN);
    const dir = scratchDir("bad-shape");
    const gguf = join(dir, "shape.gguf");
    const input = ggufModelInput(source.weights, spVocab(source), "x");
    const wrongConfig = { ...input, config: { ...input.config, hiddenDim: 160 } };
    // Metadata says 160, tensors keep their 172 rows.
    const metadata = llamaMetadata(wrongConfig, "f32");
    const reader = GgufReader.open(GGUF);
    const sources = [...reader.tensors.values()].map((info) => ({
      name: info.name,
      dims: info.dims,
      type: GGML_TYPE.F32,
      data: () => reader.readTensor(info.name),
    }));
    writeGguf(gguf, metadata, sources);
    reader.close();
    expect((await formatErrorAsync(loadModel(gguf))).message).toBe(
      `${gguf}: tensor blk.0.ffn_gate.weight has shape [64,172], the config needs [64,160] (ggml order, innermost first)`,
    );

    const hf = join(dir, "hf");
    writeHfFolder(hf, source.weights, spVocab(source), { tied: true });
    writeFileSync(
      join(hf, "config.json"),
      JSON.stringify({ ...hfConfigJson(source.weights, true), intermediate_size: 160 }),
    );
    expect((await formatErrorAsync(loadModel(hf))).message).toBe(
      `${join(hf, "model.safetensors")}: tensor model.layers.0.mlp.gate_proj.weight has shape [172,64], config.json implies [160,64]`,
    );
  });

  it("corrupt safetensors header and bad config.json", async () => {
    const source = await loadModel(BIN);
    const dir = scratchDir("bad-hf");
    const hf = join(dir, "hf");
    writeHfFolder(hf, source.weights, spVocab(source), { tied: true });
    const st = join(hf, "model.safetensors");
    const good = readFileSync(st);
    const corrupt = Buffer.from(good);
    corrupt.write("#", 8); // first byte of the JSON header
    writeFileSync(st, corrupt);
    expect((await formatErrorAsync(loadModel(hf))).message).toMatch(
      new RegExp(`^${st.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: corrupt safetensors header: not valid JSON`),
    );
    const huge = Buffer.from(good);
    huge.writeBigUInt64LE(10n ** 12n, 0);
    writeFileSync(st, huge);
    expect((await formatErrorAsync(loadModel(hf))).message).toBe(
      `${st}: corrupt safetensors header: header length 1000000000000 exceeds the file (${good.length} bytes)`,
    );
    writeFileSync(st, good);

    const config = join(hf, "config.json");
    writeFileSync(config, '{ "hidden_size": 64,');
    expect((await formatErrorAsync(loadModel(hf))).message).toMatch(
      new RegExp(`^${config.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: not valid JSON`),
    );
    writeFileSync(config, JSON.stringify({ ...hfConfigJson(source.weights, true), num_attention_heads: 6 }));
    expect((await formatErrorAsync(loadModel(hf))).message).toBe(
      `${config}: hidden_size 64 is not a multiple of num_attention_heads 6 (and head_dim is not given)`,
    );
    writeFileSync(config, JSON.stringify({ ...hfConfigJson(source.weights, true), num_hidden_layers: undefined }));
    expect((await formatErrorAsync(loadModel(hf))).message).toBe(`${config}: num_hidden_layers is missing`);
    writeFileSync(
      config,
      JSON.stringify({ ...hfConfigJson(source.weights, true), architectures: ["GPT2LMHeadModel"] }),
    );
    expect((await formatErrorAsync(loadModel(hf))).message).toBe(
      `${config}: architectures ["GPT2LMHeadModel"] are not supported (only LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM)`,
    );
    writeFileSync(
      config,
      JSON.stringify({ ...hfConfigJson(source.weights, true), rope_scaling: { rope_type: "yarn", factor: 8 } }),
    );
    expect((await formatErrorAsync(loadModel(hf))).message).toBe(
      `${config}: rope_scaling of type "yarn" is not supported (only "default" and "llama3")`,
    );
  });

  it("paths that hold no model", async () => {
    const dir = scratchDir("empty");
    expect((await formatErrorAsync(loadModel(dir))).message).toBe(
      `${dir}: no model found: looked for config.json (Hugging Face), a llama2.c .bin with tok*.bin, or a .gguf`,
    );
    expect((await formatErrorAsync(loadModel(join(dir, "nope")))).message).toBe(
      `${join(dir, "nope")}: no such file or folder`,
    );
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "model.pt"), "x");
    expect((await formatErrorAsync(loadModel(join(dir, "model.pt")))).problem).toContain(
      'unknown model file type ".pt"',
    );
    expect((await formatErrorAsync(loadModel(TOK))).problem).toContain("llama2.c tokenizer file, not a model");
  });
});
