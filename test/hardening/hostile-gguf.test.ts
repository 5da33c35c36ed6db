// Issue 13, item 10: hostile GGUF headers. Metadata arrays of 150M items or nested 100k deep are refused by name
// with memory flat and no stack overflow; a context_length of 2^32-1 loads, and the engine sizes its KV pool and
// RoPE tables from the context served (asked, else at most 8192), refusing by name what it cannot serve.
import { mkdtemp, open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InvalidOptionError, ModelFormatError } from "../../node/engine/errors.ts";
import { GGUF_TYPE, type GgufMetadataEntry } from "../../node/engine/formats/gguf-types.ts";
import { GgufReader, MAX_ARRAY_ITEMS } from "../../node/engine/formats/gguf-read.ts";
import { writeGguf } from "../../node/engine/formats/gguf-write.ts";
import { loadModel } from "../../node/engine/formats/load-model.ts";
import { openEngine } from "../../node/engine/runtime/open-engine.ts";
import { complete } from "../../node/engine/runtime/complete.ts";
import { STORIES_DIR } from "../helpers/stories.ts";

const MIB = 2 ** 20;

/** Little-endian header bytes written by hand: the writer would need the hostile values in memory. */
class Bytes {
  parts: Uint8Array[] = [];
  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.parts.push(b);
    return this;
  }
  u64(v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    this.parts.push(b);
    return this;
  }
  string(s: string): this {
    const text = new TextEncoder().encode(s);
    this.u64(text.length);
    this.parts.push(text);
    return this;
  }
  /** A GGUF v3 header start: no tensors, `keys` metadata entries to follow. */
  static gguf(keys: number): Bytes {
    return new Bytes().u32(0x46554747).u32(3).u64(0).u64(keys);
  }
}

/** Writes `bytes` and then a sparse hole up to `size` bytes (reads as zeros without taking disk or memory). */
async function writeFile(bytes: Bytes, size = 0): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), "openlora-hostile-gguf-")), "hostile.gguf");
  const handle = await open(file, "w");
  const all = Buffer.concat(bytes.parts);
  await handle.write(all, 0, all.length, 0);
  await handle.truncate(Math.max(all.length, size));
  await handle.close();
  return file;
}

function openError(file: string): ModelFormatError {
  let error: unknown;
  try {
    GgufReader.open(file).close();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ModelFormatError);
  return error as ModelFormatError;
}

describe("GGUF metadata arrays (item 10)", () => {
  it("refuses an array of 150M items by its length, naming the key, with memory flat", async () => {
    const header = Bytes.gguf(1).string("tokenizer.ggml.token_type").u32(GGUF_TYPE.array).u32(GGUF_TYPE.uint8);
    const file = await writeFile(header.u64(150_000_000), 160 * MIB);
    const rssBefore = process.memoryUsage().rss;
    expect(openError(file).message).toBe(
      `${file}: metadata tokenizer.ggml.token_type has 150000000 items, more than the ${MAX_ARRAY_ITEMS} an array may hold`,
    );
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * MIB);
  });

  it("refuses an array length the rest of the file cannot hold at the item type's size", async () => {
    const header = Bytes.gguf(1).string("llama.rope.freqs").u32(GGUF_TYPE.array).u32(GGUF_TYPE.float32);
    const file = await writeFile(header.u64(1000), 64 + 3999);
    expect(openError(file).message).toMatch(/corrupt GGUF: llama\.rope\.freqs length is 1000, more than the 999/);
  });

  it("refuses arrays nested 100k deep at the third level, naming the field, without a stack overflow", async () => {
    const header = Bytes.gguf(1).string("general.nested").u32(GGUF_TYPE.array);
    const levels = new DataView(new ArrayBuffer(12 * 100_000)); // each level: item type array, length 1
    for (let i = 0; i < 100_000; i++) {
      levels.setUint32(12 * i, GGUF_TYPE.array, true);
      levels.setBigUint64(12 * i + 4, 1n, true);
    }
    header.parts.push(new Uint8Array(levels.buffer));
    const file = await writeFile(header.u32(GGUF_TYPE.uint8).u64(1));
    expect(openError(file).message).toBe(
      `${file}: metadata general.nested[0][0]: arrays nested more than 2 deep are not accepted`,
    );
  });

  it("bounds the items of all arrays together: many arrays at the cap are refused at the one that passes it", async () => {
    const keys = 3;
    const header = Bytes.gguf(keys);
    for (let k = 0; k < keys; k++) {
      header.string(`general.filler${k}`).u32(GGUF_TYPE.array).u32(GGUF_TYPE.uint8).u64(MAX_ARRAY_ITEMS);
      header.parts.push(new Uint8Array(MAX_ARRAY_ITEMS));
    }
    const file = await writeFile(header);
    expect(openError(file).message).toMatch(
      /metadata general\.filler2: the header's arrays hold more than the 8388608 items accepted in all/,
    );
  });
});

describe("context_length 2^32-1 (item 10)", () => {
  async function storiesWithContext(context: number): Promise<string> {
    const source = GgufReader.open(join(STORIES_DIR, "stories260K.gguf"));
    const file = join(await mkdtemp(join(tmpdir(), "openlora-context-")), "long.gguf");
    try {
      const metadata = new Map<string, GgufMetadataEntry>(source.metadata);
      metadata.set("llama.context_length", { type: GGUF_TYPE.uint32, value: context });
      const tensors = [...source.tensors.values()].map((info) => ({
        ...info,
        data: () => source.readTensor(info.name),
      }));
      writeGguf(file, metadata, tensors);
    } finally {
      source.close();
    }
    return file;
  }

  it("serves at most 8192 positions unless asked: KV pool and RoPE tables are not sized by the file", async () => {
    const model = await loadModel(await storiesWithContext(2 ** 32 - 1));
    expect(model.weights.config.maxSeqLen).toBe(2 ** 32 - 1);
    const opened = await openEngine({ model, backend: "cpu" });
    try {
      expect(opened.engine.limits.maxSeqLen).toBe(8192);
      expect(opened.engine.limits.kvPositions).toBe(4 * 8192);
      const result = await complete(opened.engine, {
        adapterId: null,
        prompt: "Once upon",
        maxTokens: 4,
        temperature: 0,
        stop: [],
      });
      expect(result.usage.completionTokens).toBeGreaterThan(0);
    } finally {
      await opened.close();
    }
  });

  it("refuses by name a context the model does not have or this machine cannot hold, before allocating", async () => {
    const model = await loadModel(await storiesWithContext(2 ** 32 - 1));
    const tooLong = await openEngine({ model, backend: "cpu", context: 2 ** 32 }).catch((e: unknown) => e);
    expect(tooLong).toBeInstanceOf(InvalidOptionError);
    expect((tooLong as Error).message).toMatch(
      /^context: 4294967296 positions exceed the model's context length 4294967295 \(.*context_length/,
    );
    const huge = await openEngine({ model, backend: "cpu", context: 2 ** 32 - 1 }).catch((e: unknown) => e);
    expect(huge).toBeInstanceOf(InvalidOptionError);
    expect((huge as Error).message).toMatch(
      /^context: a KV pool of 1073741824 blocks for a context of 4294967295 positions takes \d+\.\d GiB, more than half/,
    );
  });
});
