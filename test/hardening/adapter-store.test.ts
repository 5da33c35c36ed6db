// Issue 13, the adapter store under concurrent imports and files that change under it: each test performs the
// attack and shows that the store stays consistent and never serves or announces what it cannot back.
import { readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AdapterError, InvalidRequestError } from "../../node/engine/errors.ts";
import { closedAfterEachTest } from "../engine/runtime-helpers.ts";
import { DRAGON } from "./peft-folders.ts";

const makeEngine = closedAfterEachTest();

describe("concurrent imports of one adapter (item 5)", () => {
  it("8 imports at once all succeed with one file, one registration event and no temporary file left", async () => {
    const { engine, dir } = await makeEngine();
    const registered: string[] = [];
    engine.on("adapter:registered", ({ id }) => registered.push(id));
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => engine.adapters.import(DRAGON)));
    expect(results.map((r) => r.status)).toEqual(Array(8).fill("fulfilled"));
    const ids = new Set(results.map((r) => (r as PromiseFulfilledResult<{ id: string }>).value.id));
    expect(ids.size).toBe(1);
    expect(registered).toEqual([...ids]);
    expect(await readdir(dir)).toEqual([`${[...ids][0].slice(2)}.olora`]);
  });
});

describe("a store file deleted or corrupted under the node (items 12 and 16)", () => {
  it("a deleted file leaves the index and the listing (so the announcement), with an error naming the file", async () => {
    const { engine, dir } = await makeEngine();
    const { id } = await engine.adapters.import(DRAGON);
    await engine.adapters.unload(id); // only the disk copy is left
    const removed: string[] = [];
    engine.on("adapter:removed", (event) => removed.push(event.id));
    await rm(join(dir, `${id.slice(2)}.olora`));

    const error = await engine.adapters.load(id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdapterError);
    expect((error as Error).message).toMatch(/disk file .*\.olora was deleted: the adapter is no longer registered/);
    expect(removed).toEqual([id]);
    expect(engine.adapters.has(id)).toBe(false);
    expect(engine.adapters.list()).toEqual([]);
    expect(await engine.adapters.readBytes(id)).toBeNull();
    expect(() => engine.submit({ adapterId: id, prompt: "Once", maxTokens: 1 })).toThrow(InvalidRequestError);
    expect(engine.stats().tiers.disk).toEqual({ adapters: 0, bytes: 0 });
  });

  it("a file corrupted after its first serve is never served again: re-hashed, moved aside, no longer announced", async () => {
    const { engine, dir } = await makeEngine();
    const { id } = await engine.adapters.import(DRAGON);
    const file = join(dir, `${id.slice(2)}.olora`);
    const served = await engine.adapters.readBytes(id);
    expect(served).not.toBeNull();

    // Same size, same mtime: only the bytes changed (bit rot, or a hand edit that restored the time).
    const { mtime, atime } = await stat(file);
    const bytes = await readFile(file);
    bytes[bytes.length - 1] ^= 0x40;
    await writeFile(file, bytes);
    await utimes(file, atime, mtime);
    const removed: string[] = [];
    engine.on("adapter:removed", (event) => removed.push(event.id));

    expect(await engine.adapters.readBytes(id)).toBeNull();
    expect(removed).toEqual([id]);
    expect(engine.adapters.list().map((a) => a.id)).not.toContain(id);
    expect(await readdir(dir)).toEqual([`${id.slice(2)}.olora.corrupt`]);
  });
});
