// Hostile PEFT folders for the hardening suites: the dragon demo adapter with its config or tensors edited.
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AdapterExpectations } from "../../node/engine/adapter/peft.ts";
import { readSafetensors, writeSafetensors } from "../../node/engine/formats/safetensors.ts";
import { STORIES_DIR, stories } from "../helpers/stories.ts";

export const DRAGON = join(STORIES_DIR, "adapters", "dragon");

export type PlainTensors = Map<string, { shape: number[]; data: Float32Array }>;

/** The dragon adapter's config and tensors as plain values. */
export async function dragonParts(): Promise<{ config: Record<string, unknown>; tensors: PlainTensors }> {
  const config = JSON.parse(await readFile(join(DRAGON, "adapter_config.json"), "utf8")) as Record<string, unknown>;
  const read = readSafetensors(await readFile(join(DRAGON, "adapter_model.safetensors")), "dragon");
  return { config, tensors: new Map([...read].map(([k, t]) => [k, { shape: t.shape, data: t.data }])) };
}

/** Writes a PEFT folder (adapter_config.json + adapter_model.safetensors) into a fresh temporary folder. */
export async function writePeftFolder(config: Record<string, unknown>, tensors: PlainTensors): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "openlora-hostile-"));
  await writeFile(join(dir, "adapter_config.json"), JSON.stringify(config));
  await writeFile(join(dir, "adapter_model.safetensors"), writeSafetensors(tensors));
  return dir;
}

/** What stories260K expects of an adapter. */
export async function storiesExpectations(): Promise<AdapterExpectations> {
  const model = await stories();
  return { config: model.weights.config, name: model.name, qkBasis: model.qkBasis, maxRank: 64 };
}
