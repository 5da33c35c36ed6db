// `--adapters <folder>`: every PEFT folder inside it is imported at start and named by its folder name.
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { AdapterId, Engine } from "../engine/index.ts";
import type { ModelCatalog } from "./model-catalog.ts";

/** The PEFT folders (those with adapter_config.json) directly inside `folder`, by name. */
export async function peftFolders(folder: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(folder, { withFileTypes: true });
  } catch (error) {
    throw new Error(`--adapters ${folder}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return entries
    .filter((e) => e.isDirectory() && existsSync(join(folder, e.name, "adapter_config.json")))
    .map((e) => e.name)
    .sort();
}

export interface ImportedAdapter {
  name: string;
  id: AdapterId;
  /** False when the name already named another adapter (the adapter is served by its id alone). */
  aliased: boolean;
}

/** Imports each PEFT folder of `folder`, aliased by folder name; `onEach` follows progress. */
export async function importAdapterFolder(
  engine: Engine,
  catalog: ModelCatalog,
  folder: string,
  onEach: (done: number, total: number, name: string) => void = () => {},
): Promise<ImportedAdapter[]> {
  const names = await peftFolders(folder);
  const out: ImportedAdapter[] = [];
  onEach(0, names.length, "");
  for (const [i, name] of names.entries()) {
    const id = (await engine.adapters.import(join(folder, name))).id as AdapterId;
    const taken = catalog.resolve(name);
    let aliased = taken !== null && taken.adapterId === id;
    if (taken === null) {
      // A folder name that is no valid alias (spaces, an id's shape) leaves the adapter served by its id.
      aliased = await catalog.setAlias(name, id).then(
        () => true,
        () => false,
      );
    }
    out.push({ name, id, aliased });
    onEach(i + 1, names.length, name);
  }
  return out;
}
