// Hugging Face's q/k row order, held to transformers itself rather than to the engine's own permutation: a
// self-consistent but wrong order in rope-basis.ts would round-trip through the engine's functions and still
// load its own HF folders. Here the HF side is written the way transformers' conversion script writes it, and a
// stories260K converted that way must give llama2.c's greedy output.
import { float32Weights } from "../../node/engine/formats/weight-codec.ts";
import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { peftTensorKey } from "../../node/engine/adapter/peft.ts";
import { readSafetensors, writeSafetensors } from "../../node/engine/formats/safetensors.ts";
import { permuteRotateHalfRows, unpermuteRotateHalfRows } from "../../node/engine/model/rope-basis.ts";
import type { SentencePieceBpeTokenizer } from "../../node/engine/tokenizer/sentencepiece-bpe.ts";
import { oneShotEngine, STORIES_DIR, stories } from "../helpers/stories.ts";
import { hfConfigJson, hfTensors, scratchDir, writeHfFolder } from "./formats-helpers.ts";

const reference = JSON.parse(await readFile(join(STORIES_DIR, "greedy_empty_prompt_256.json"), "utf8")) as {
  ids: number[];
  text: string;
};

/**
 * transformers' convert_llama_weights_to_hf.py, literally:
 *   w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)
 * as strides over the row-major [dim1, dim2] input: the view, its transpose, then a contiguous copy.
 */
function transformersPermute(w: Float32Array, nHeads: number, dim1: number, dim2: number): Float32Array {
  const shape = [nHeads, dim1 / nHeads / 2, 2, dim2];
  const strides = [shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1];
  const tShape = [shape[0], shape[2], shape[1], shape[3]];
  const tStrides = [strides[0], strides[2], strides[1], strides[3]];
  const out = new Float32Array(w.length);
  let k = 0;
  for (let a = 0; a < tShape[0]; a++) {
    for (let b = 0; b < tShape[1]; b++) {
      for (let c = 0; c < tShape[2]; c++) {
        for (let d = 0; d < tShape[3]; d++)
          out[k++] = w[a * tStrides[0] + b * tStrides[1] + c * tStrides[2] + d * tStrides[3]];
      }
    }
  }
  return out;
}

const model = await stories();
const c = model.weights.config;
const kvDim = c.nKvHeads * c.headDim;

/** stories260K as transformers would convert it: q/k permuted by transformersPermute, named like the adapters' base. */
async function convertedFolder(): Promise<string> {
  const folder = join(scratchDir("hf-transformers"), "stories260K");
  writeHfFolder(folder, model.weights, (model.tokenizer as SentencePieceBpeTokenizer).vocab(), { tied: true });
  const tensors = hfTensors(model.weights, true);
  float32Weights(model.weights).layers.forEach((layer, l) => {
    tensors.set(`model.layers.${l}.self_attn.q_proj.weight`, {
      shape: [c.dim, c.dim],
      data: transformersPermute(layer.wq, c.nHeads, c.dim, c.dim),
    });
    tensors.set(`model.layers.${l}.self_attn.k_proj.weight`, {
      shape: [kvDim, c.dim],
      data: transformersPermute(layer.wk, c.nKvHeads, kvDim, c.dim),
    });
  });
  await writeFile(join(folder, "model.safetensors"), writeSafetensors(tensors));
  await writeFile(
    join(folder, "config.json"),
    JSON.stringify({ ...hfConfigJson(model.weights, true), _name_or_path: "karpathy/stories260K" }),
  );
  return folder;
}

/** The dragon adapter as PEFT saves it for an HF model: q/k lora_B rows (output rows) in transformers' order. */
async function hfDragon(): Promise<string> {
  const dragon = join(STORIES_DIR, "adapters", "dragon");
  const dir = join(scratchDir("hf-dragon"), "dragon");
  await cp(dragon, dir, { recursive: true });
  const tensors = readSafetensors(await readFile(join(dragon, "adapter_model.safetensors")), "dragon");
  const plain = new Map([...tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
  for (let l = 0; l < c.nLayers; l++) {
    for (const [target, heads, rows] of [
      ["q", c.nHeads, c.dim],
      ["k", c.nKvHeads, kvDim],
    ] as const) {
      const b = plain.get(peftTensorKey(l, target, "B"))!;
      plain.set(peftTensorKey(l, target, "B"), {
        shape: b.shape,
        data: transformersPermute(b.data, heads, rows, b.shape[1]),
      });
    }
  }
  await writeFile(join(dir, "adapter_model.safetensors"), writeSafetensors(plain));
  return dir;
}

const folder = await convertedFolder();
const hfEngine = oneShotEngine({ model: folder });
const binEngine = oneShotEngine();

describe("Hugging Face q/k row order, as transformers writes it", () => {
  it("permuteRotateHalfRows is transformers' permute for q and k shapes, and unpermuteRotateHalfRows undoes it", () => {
    for (const [heads, rows, cols] of [
      [c.nHeads, c.dim, c.dim],
      [c.nKvHeads, kvDim, c.dim],
      [c.nHeads, c.dim, 8],
      [2, 16, 3],
    ]) {
      const w = Float32Array.from({ length: rows * cols }, (_, i) => i);
      const theirs = transformersPermute(w, heads, rows, cols);
      expect(permuteRotateHalfRows(w, heads, cols), `${heads} heads, [${rows}, ${cols}]`).toEqual(theirs);
      expect(unpermuteRotateHalfRows(theirs, heads, cols)).toEqual(w);
    }
  });

  it("loads stories260K converted by transformers back to the llama2.c weights", async () => {
    const hf = (await hfEngine()).model;
    expect(hf.qkBasis).toBe("rotate-half");
    hf.weights.layers.forEach((layer, l) => {
      expect(layer.wq, `layer ${l} wq`).toEqual(model.weights.layers[l].wq);
      expect(layer.wk, `layer ${l} wk`).toEqual(model.weights.layers[l].wk);
    });
  });

  it("the converted folder reproduces llama2.c's greedy output from BOS, token for token", async () => {
    const result = await (await hfEngine()).complete({ prompt: "", maxTokens: 256, temperature: 0 });
    expect([...result.promptTokenIds, ...result.tokenIds]).toEqual(reference.ids);
    expect(result.text).toBe(reference.text);
  });

  it("a PEFT adapter saved for the HF model (q/k lora_B in transformers' order) tells the llama2.c model's story", async () => {
    const hf = await hfEngine();
    const bin = await binEngine();
    const hfId = (await hf.engine.adapters.import(await hfDragon())).id;
    const binId = (await bin.engine.adapters.import(join(STORIES_DIR, "adapters", "dragon"))).id;
    expect(hfId).toBe(binId); // the same canonical adapter
    const request = { prompt: "Once upon a time", maxTokens: 60, temperature: 0 };
    const fromHf = await hf.complete({ ...request, adapterId: hfId });
    expect(fromHf.tokenIds).toEqual((await bin.complete({ ...request, adapterId: binId })).tokenIds);
    expect(fromHf.text.startsWith(", there was a funny dragon named Max.")).toBe(true);
  });
});
