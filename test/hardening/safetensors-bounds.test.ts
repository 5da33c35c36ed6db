// Issue 13, item 9: a hostile adapter_model.safetensors. A 1.5 GiB file with a valid header must not be read
// whole (the header is read first and every tensor's shape checked against the config and the model before it
// is read), and the tensors' byte ranges must tile the data exactly: trailing bytes, gaps and overlapping ranges
// are refused by name.
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadPeftAdapter } from "../../node/engine/adapter/peft.ts";
import { AdapterError, ModelFormatError, OpenLoraError } from "../../node/engine/errors.ts";
import { writeSafetensors } from "../../node/engine/formats/safetensors.ts";
import { dragonParts, storiesExpectations, writePeftFolder } from "./peft-folders.ts";

const Q0 = "base_model.model.model.layers.0.self_attn.q_proj";
const GIB = 2 ** 30;

type Header = Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;

/** Writes adapter_model.safetensors as `header` and `dataBytes` of data; beyond `written`, a sparse hole. */
async function writeRaw(dir: string, header: Header, dataBytes: number, written?: Uint8Array): Promise<string> {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const file = join(dir, "adapter_model.safetensors");
  const handle = await open(file, "w");
  try {
    const length = new Uint8Array(8);
    new DataView(length.buffer).setBigUint64(0, BigInt(json.length), true);
    await handle.write(length, 0, 8, 0);
    await handle.write(json, 0, json.length, 8);
    if (written) await handle.write(written, 0, written.length, 8 + json.length);
    await handle.truncate(8 + json.length + dataBytes); // sparse: no disk blocks, reads as zeros
  } finally {
    await handle.close();
  }
  return file;
}

async function refusalOf(promise: Promise<unknown>): Promise<OpenLoraError> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(OpenLoraError);
  return error as OpenLoraError;
}

describe("a 1.5 GiB adapter_model.safetensors with a valid header (item 9)", () => {
  // lora_A [8, n] and lora_B [n, 8] of layer 0 q_proj, float32, tiling 1.5 GiB exactly: a valid header.
  const n = (1.5 * GIB) / 2 / 4 / 8;
  const header: Header = {
    [`${Q0}.lora_A.weight`]: { dtype: "F32", shape: [8, n], data_offsets: [0, 8 * n * 4] },
    [`${Q0}.lora_B.weight`]: { dtype: "F32", shape: [n, 8], data_offsets: [8 * n * 4, 16 * n * 4] },
  };

  it("is refused from its header, on a model and without one, and memory stays flat", async () => {
    const { config } = await dragonParts();
    const dir = await writePeftFolder({ ...config, target_modules: ["q_proj"] }, new Map());
    await writeRaw(dir, header, 16 * n * 4);
    const expect260K = await storiesExpectations();
    globalThis.gc?.();
    const rssBefore = process.memoryUsage().rss;

    // On the model: rank 8 on a q_proj of dim 64 is [8, 64] and [64, 8].
    const onModel = await refusalOf(loadPeftAdapter(dir, expect260K));
    expect(onModel).toBeInstanceOf(AdapterError);
    expect(onModel.message).toContain(`adapter ${dir}: lora_A of layer 0 q_proj has shape [8,${n}], expected [8, 64]`);

    // Without a model (adapter inspect): the shapes are refused before either tensor is read.
    const alone = await refusalOf(loadPeftAdapter(dir));
    expect(alone.message).toMatch(
      new RegExp(`layer 0 q_proj have shapes \\[8,${n}\\] and \\[${n},8\\], over the 131072 an adapter dimension`),
    );
    // Reading the data would have taken 1.5 GiB (the hole reads as zeros into fresh pages).
    const growth = process.memoryUsage().rss - rssBefore;
    expect(growth).toBeLessThan(64 * 2 ** 20);
  });
});

describe("tensor ranges tile the data section (item 9)", () => {
  it("refuses trailing bytes after the last tensor, naming the file and the count", async () => {
    const { config, tensors } = await dragonParts();
    const dir = await writePeftFolder(config, tensors);
    const file = join(dir, "adapter_model.safetensors");
    const bytes = writeSafetensors(tensors);
    const padded = new Uint8Array(bytes.length + 3);
    padded.set(bytes);
    await writeFile(file, padded);
    const error = await refusalOf(loadPeftAdapter(dir, await storiesExpectations()));
    expect(error).toBeInstanceOf(ModelFormatError);
    expect(error.message).toMatch(
      /adapter_model\.safetensors: 3 trailing bytes after the last tensor: data_offsets end/,
    );
    // The same file without the model (adapter inspect) is refused the same way.
    expect((await refusalOf(loadPeftAdapter(dir))).message).toMatch(/3 trailing bytes after the last tensor/);
  });

  it("refuses overlapping ranges (two tensors aliasing one byte range), naming both tensors", async () => {
    const { config } = await dragonParts();
    const dir = await writePeftFolder({ ...config, target_modules: ["q_proj"] }, new Map());
    const a = 8 * 64 * 4;
    const header: Header = {
      [`${Q0}.lora_A.weight`]: { dtype: "F32", shape: [8, 64], data_offsets: [0, a] },
      [`${Q0}.lora_B.weight`]: { dtype: "F32", shape: [64, 8], data_offsets: [0, a] },
    };
    await writeRaw(dir, header, a);
    const error = await refusalOf(loadPeftAdapter(dir, await storiesExpectations()));
    expect(error.message).toMatch(
      /tensor base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_[AB]\.weight: data_offsets \[0, 2048\] overlap tensor .*lora_[AB]\.weight, which ends at 2048/,
    );
  });

  it("refuses a gap between two tensors, naming the unused bytes", async () => {
    const { config } = await dragonParts();
    const dir = await writePeftFolder({ ...config, target_modules: ["q_proj"] }, new Map());
    const a = 8 * 64 * 4;
    const header: Header = {
      [`${Q0}.lora_A.weight`]: { dtype: "F32", shape: [8, 64], data_offsets: [0, a] },
      [`${Q0}.lora_B.weight`]: { dtype: "F32", shape: [64, 8], data_offsets: [a + 16, 2 * a + 16] },
    };
    await writeRaw(dir, header, 2 * a + 16);
    const error = await refusalOf(loadPeftAdapter(dir, await storiesExpectations()));
    expect(error.message).toMatch(/lora_B\.weight: data_offsets \[2064, 4112\] leave bytes 2048\.\.2064 after tensor/);
  });

  it("still reads a well-formed file exactly as before (the dragon adapter's id does not move)", async () => {
    const { config, tensors } = await dragonParts();
    const rewritten = await loadPeftAdapter(await writePeftFolder(config, tensors), await storiesExpectations());
    const original = await loadPeftAdapter(join(import.meta.dirname, "../../models/stories260K/adapters/dragon"), {
      ...(await storiesExpectations()),
    });
    expect(rewritten.adapter.id).toBe(original.adapter.id);
  });
});
