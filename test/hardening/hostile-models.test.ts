// Issue 13, item 7 for model files: a tensor named for layer 99,999,999 in a Hugging Face folder or a GGUF is
// refused by name from the header, before any weight is read or allocated (the adapter side is in
// hostile-adapters.test.ts).
import { mkdtemp, open, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ModelFormatError } from "../../node/engine/errors.ts";
import { ggufConfig, ggufWeights } from "../../node/engine/formats/gguf-model.ts";
import { GgufReader } from "../../node/engine/formats/gguf-read.ts";
import { writeGguf } from "../../node/engine/formats/gguf-write.ts";
import { parseHfConfig } from "../../node/engine/formats/hf-config.ts";
import { readHfWeights } from "../../node/engine/formats/hf-model.ts";
import { loadModel } from "../../node/engine/formats/load-model.ts";
import { STORIES_DIR } from "../helpers/stories.ts";

const MIB = 2 ** 20;

/** A Llama config of ~670 MB of float32 weights (2 layers, dim 2048, vocab 32000, tied head). */
const BIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: 2,
  num_attention_heads: 16,
  num_key_value_heads: 16,
  vocab_size: 32000,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
};

/** Every tensor a Llama of BIG's shape has, plus `extra`, as a safetensors header of F32 ranges that tile. */
function bigHeader(extra: Record<string, number[]>): { json: Uint8Array; dataBytes: number } {
  const { hidden_size: d, intermediate_size: h, vocab_size: v } = BIG;
  const shapes: Record<string, number[]> = { "model.embed_tokens.weight": [v, d], "model.norm.weight": [d] };
  for (let l = 0; l < BIG.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    for (const n of ["input_layernorm", "post_attention_layernorm"]) shapes[`${p}.${n}.weight`] = [d];
    for (const n of ["q_proj", "k_proj", "v_proj", "o_proj"]) shapes[`${p}.self_attn.${n}.weight`] = [d, d];
    shapes[`${p}.mlp.gate_proj.weight`] = [h, d];
    shapes[`${p}.mlp.up_proj.weight`] = [h, d];
    shapes[`${p}.mlp.down_proj.weight`] = [d, h];
  }
  Object.assign(shapes, extra);
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    const bytes = 4 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: "F32", shape, data_offsets: [at, at + bytes] };
    at += bytes;
  }
  return { json: new TextEncoder().encode(JSON.stringify(header)), dataBytes: at };
}

describe("a model tensor named for layer 99,999,999 (item 7, model files)", () => {
  it("Hugging Face folder: refused by name from the header; the 670 MB of weights are never read", async () => {
    const folder = await mkdtemp(join(tmpdir(), "openlora-hostile-model-"));
    await writeFile(join(folder, "config.json"), JSON.stringify(BIG));
    const hostile = "model.layers.99999999.self_attn.q_proj.weight";
    const { json, dataBytes } = bigHeader({ [hostile]: [2048, 2048] });
    expect(dataBytes).toBeGreaterThan(600 * MIB);
    const handle = await open(join(folder, "model.safetensors"), "w");
    const length = new Uint8Array(8);
    new DataView(length.buffer).setBigUint64(0, BigInt(json.length), true);
    await handle.write(length, 0, 8, 0);
    await handle.write(json, 0, json.length, 8);
    await handle.truncate(8 + json.length + dataBytes); // sparse: the weights read as zeros, into fresh pages
    await handle.close();

    globalThis.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const parsed = parseHfConfig(BIG, join(folder, "config.json"));
    const error = (() => {
      try {
        readHfWeights(folder, parsed);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ModelFormatError);
    expect((error as Error).message).toBe(
      `${join(folder, "model.safetensors")}: tensor ${hostile}: layer 99999999 is out of range (num_hidden_layers is 2)`,
    );
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * MIB);
  });

  it("GGUF: stories260K with an extra blk.99999999 tensor is refused by name, through loadModel too", async () => {
    const source = GgufReader.open(join(STORIES_DIR, "stories260K.gguf"));
    const file = join(await mkdtemp(join(tmpdir(), "openlora-hostile-gguf-")), "hostile.gguf");
    try {
      const q = source.tensors.get("blk.0.attn_q.weight")!;
      const tensors = [...source.tensors.values(), { ...q, name: "blk.99999999.attn_q.weight" }].map((info) => ({
        name: info.name,
        dims: info.dims,
        type: info.type,
        data: () => source.readTensor(info.name === "blk.99999999.attn_q.weight" ? q.name : info.name),
      }));
      writeGguf(file, source.metadata, tensors);
    } finally {
      source.close();
    }
    const reader = GgufReader.open(file);
    try {
      expect(() => ggufWeights(reader, ggufConfig(reader))).toThrow(
        `${file}: tensor blk.99999999.attn_q.weight: layer 99999999 is out of range (llama.block_count is 5)`,
      );
    } finally {
      reader.close();
    }
    await expect(loadModel(file)).rejects.toThrow(/blk\.99999999\.attn_q\.weight: layer 99999999 is out of range/);
  });
});
