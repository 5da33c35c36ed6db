import { randomUUID } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeAdapter } from "../../adapter/canonical.ts";
import { adapterIdOf, isAdapterId } from "../../adapter/id.ts";
import type { LoraAdapter } from "../../adapter/lora.ts";
import { AdapterError } from "../../errors.ts";

const SUFFIX = ".olora";
/** A file whose bytes no longer hash to its name is renamed with this suffix: kept for the operator, not indexed. */
const CORRUPT_SUFFIX = ".corrupt";

/** Why a registered adapter left the index on its own: its file was deleted, or its bytes changed. */
export type LostReason = "missing" | "corrupted";

/**
 * The disk tier: a folder of canonical adapter encodings, one file per adapter, named by its id. Content
 * addressed: the name is the sha256 of the bytes, checked again on every read (also every read served to a
 * peer: a file corrupted after its first serve must not get this node banned), so a corrupted or swapped file
 * is refused instead of served. A file found deleted or corrupted leaves the index at once and `onLost` hears
 * of it (the store then stops announcing it). The index of registered ids lives in memory.
 */
export class DiskTier {
  readonly dir: string;
  #sizes = new Map<string, number>();
  #bytes = 0;
  /** Hears of each adapter whose file was found deleted or corrupted (it has left the index). */
  onLost: (id: string, reason: LostReason) => void = () => {};

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Opens (creating it when missing) a store folder and indexes the adapters in it. */
  static async open(dir: string): Promise<DiskTier> {
    await mkdir(dir, { recursive: true });
    const tier = new DiskTier(dir);
    for (const name of await readdir(dir)) {
      if (!name.endsWith(SUFFIX)) continue;
      const id = "0x" + name.slice(0, -SUFFIX.length);
      if (!isAdapterId(id)) continue;
      tier.#index(id, (await stat(join(dir, name))).size);
    }
    return tier;
  }

  has(id: string): boolean {
    return this.#sizes.has(id);
  }

  sizeOf(id: string): number | undefined {
    return this.#sizes.get(id);
  }

  get count(): number {
    return this.#sizes.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  ids(): IterableIterator<string> {
    return this.#sizes.keys();
  }

  /** Stores canonical bytes (already checked by the caller) under their id; returns the id. */
  async put(encoded: Uint8Array): Promise<string> {
    const id = adapterIdOf(encoded);
    if (this.#sizes.has(id)) return id;
    const file = this.#file(id);
    // A name of its own per write: concurrent writes of one id (two imports, two processes) never share a file.
    const partial = `${file}.${randomUUID()}.partial`;
    await writeFile(partial, encoded);
    await rename(partial, file); // appears whole or not at all
    this.#index(id, encoded.length);
    return id;
  }

  /** Reads and decodes an adapter, refusing bytes whose sha256 is not the id. */
  async read(id: string): Promise<{ adapter: LoraAdapter; bytes: number }> {
    const bytes = await this.#readVerified(id);
    if (typeof bytes === "string") throw new AdapterError(id, bytes);
    const adapter = decodeAdapter(bytes, this.#file(id)); // the bytes hash to the id: they are what was stored
    return { adapter, bytes: bytes.length };
  }

  /** The canonical bytes of an adapter (checked against its id), as peers are sent them; null when not here. */
  async readBytes(id: string): Promise<Uint8Array | null> {
    const bytes = await this.#readVerified(id);
    return typeof bytes === "string" ? null : bytes;
  }

  /** Forgets an adapter and deletes its file. */
  async remove(id: string): Promise<void> {
    if (!this.#forget(id)) return;
    await rm(this.#file(id), { force: true });
  }

  /** The file's bytes when they hash to the id; otherwise why not (and a lost file leaves the index). */
  async #readVerified(id: string): Promise<Uint8Array | string> {
    if (!this.#sizes.has(id)) return "is not in the disk store";
    const file = this.#file(id);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      this.#lose(id, "missing");
      return `disk file ${file} was deleted: the adapter is no longer registered`;
    }
    const actual = adapterIdOf(bytes);
    if (actual === id) return bytes;
    await rename(file, file + CORRUPT_SUFFIX).catch(() => {});
    this.#lose(id, "corrupted");
    return `disk file ${file} is corrupted: its sha256 is ${actual}; moved aside, the adapter is no longer registered`;
  }

  #lose(id: string, reason: LostReason): void {
    if (this.#forget(id)) this.onLost(id, reason);
  }

  #forget(id: string): boolean {
    const size = this.#sizes.get(id);
    if (size === undefined) return false;
    this.#sizes.delete(id);
    this.#bytes -= size;
    return true;
  }

  #index(id: string, size: number): void {
    this.#sizes.set(id, size);
    this.#bytes += size;
  }

  /** The file that holds (or would hold) an adapter. */
  pathOf(id: string): string {
    return this.#file(id);
  }

  #file(id: string): string {
    return join(this.dir, id.slice(2) + SUFFIX);
  }
}
