import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeAdapter } from "../../adapter/canonical.ts";
import { adapterIdOf, isAdapterId } from "../../adapter/id.ts";
import type { LoraAdapter } from "../../adapter/lora.ts";
import { AdapterError } from "../../errors.ts";

const SUFFIX = ".olora";

/**
 * The disk tier: a folder of canonical adapter encodings, one file per adapter, named by its id. Content
 * addressed: the name is the sha256 of the bytes, checked again on every read, so a corrupted or swapped file
 * is refused instead of served. The index of registered ids lives in memory (a few bytes per adapter).
 */
export class DiskTier {
  readonly dir: string;
  #sizes = new Map<string, number>();
  #verified = new Set<string>();
  #bytes = 0;

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
    const partial = `${file}.${process.pid}.partial`;
    await writeFile(partial, encoded);
    await rename(partial, file); // appears whole or not at all
    this.#index(id, encoded.length);
    return id;
  }

  /** Reads and decodes an adapter, refusing bytes whose sha256 is not the id. */
  async read(id: string): Promise<{ adapter: LoraAdapter; bytes: number }> {
    if (!this.#sizes.has(id)) throw new AdapterError(id, "is not in the disk store");
    const file = this.#file(id);
    const bytes = await readFile(file);
    let adapter: LoraAdapter;
    try {
      adapter = decodeAdapter(bytes, file); // hashes the bytes: adapter.id is their sha256
    } catch (error) {
      throw new AdapterError(id, `disk file ${file} is corrupted: ${(error as Error).message}`);
    }
    if (adapter.id !== id) throw new AdapterError(id, `disk file ${file} is corrupted: its sha256 is ${adapter.id}`);
    return { adapter, bytes: bytes.length };
  }

  /**
   * The canonical bytes of an adapter, as peers are sent them, or null when absent or corrupted. Each file is
   * hashed on its first read: a corrupted file must not be served (and get this node banned by its peers).
   */
  async readBytes(id: string): Promise<Uint8Array | null> {
    if (!this.#sizes.has(id)) return null;
    let bytes: Uint8Array;
    try {
      bytes = await readFile(this.#file(id));
    } catch {
      return null;
    }
    if (!this.#verified.has(id)) {
      if (adapterIdOf(bytes) !== id) return null;
      this.#verified.add(id);
    }
    return bytes;
  }

  /** Forgets an adapter and deletes its file. */
  async remove(id: string): Promise<void> {
    const size = this.#sizes.get(id);
    if (size === undefined) return;
    this.#sizes.delete(id);
    this.#verified.delete(id);
    this.#bytes -= size;
    await rm(this.#file(id), { force: true });
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
