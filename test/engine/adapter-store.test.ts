// The adapter store's tiers as units: the disk tier (content-addressed files on disk, checked on every read), the
// host tier (LRU by bytes), the slot pool (pins, loads, which slot to reuse) and the store over them on a real
// cpu backend: registration, loads and their events, `want` (what the queue asks for) and its prefetch, unload,
// remove, and adapters whose files went missing or bad.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import type { Backend } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import { AdapterError } from "../../node/engine/errors.ts";
import { AdapterStore } from "../../node/engine/runtime/adapter-store/adapter-store.ts";
import { DiskTier, type LostReason } from "../../node/engine/runtime/adapter-store/disk-tier.ts";
import { HostTier } from "../../node/engine/runtime/adapter-store/host-tier.ts";
import { SlotPool } from "../../node/engine/runtime/adapter-store/slot-pool.ts";
import { DeviceLock } from "../../node/engine/runtime/device-lock.ts";
import type { AdapterEvents } from "../../node/engine/runtime/types.ts";
import { randomLora } from "../../scripts/bench/random-adapters.ts";
import { stories } from "../helpers/stories.ts";

const model = await stories();
const config = model.weights.config;
const lora = (seed: number, rank = 2) => randomLora(config, { rank, seed, targets: ["q", "down"] });
const A = lora(1);
const B = lora(2);
const C = lora(3);
const D = lora(4);
const E = lora(5);
const fake = (id: string) => ({ id }) as unknown as LoraAdapter;
const scratch = () => mkdtemp(join(tmpdir(), "openlora-tier-"));

describe("slot pool", () => {
  it("refuses a bad size, and starts with every slot empty and unpinned", () => {
    expect(() => new SlotPool(-1)).toThrow("slot count must be an integer >= 0, got -1");
    expect(() => new SlotPool(1.5)).toThrow(/got 1.5/);
    const pool = new SlotPool(2);
    expect(pool.entries()).toEqual([
      { slot: 0, adapterId: null, pins: 0, state: "empty" },
      { slot: 1, adapterId: null, pins: 0, state: "empty" },
    ]);
    expect(pool.unpinned).toBe(2);
    expect(new SlotPool(0).victim(new Set())).toBe(-1);
  });

  it("tracks loading and ready slots, and pins only ready ones", () => {
    const pool = new SlotPool(2);
    pool.beginLoad(1, "a");
    expect([pool.slotOf("a"), pool.readySlot("a"), pool.isLoading("a")]).toEqual([1, -1, true]);
    expect(() => pool.pin(1)).toThrow("slot 1 is loading, it cannot be pinned");
    expect(() => pool.pin(0)).toThrow("slot 0 is empty, it cannot be pinned");
    expect(() => pool.beginLoad(1, "b")).toThrow("slot 1 is busy");
    pool.endLoad(1, true);
    expect([pool.readySlot("a"), pool.isLoading("a")]).toEqual([1, false]);
    pool.pin(1);
    pool.pin(1);
    expect(pool.pins(1)).toBe(2);
    expect(pool.unpinned).toBe(1);
    expect(() => pool.beginLoad(1, "b")).toThrow("slot 1 is busy");
    expect(() => pool.clear(1)).toThrow("slot 1 is busy");
    pool.unpin(1);
    pool.unpin(1);
    expect(() => pool.unpin(1)).toThrow("slot 1 is not pinned");
    pool.clear(1);
    expect(pool.entries()[1]).toEqual({ slot: 1, adapterId: null, pins: 0, state: "empty" });
  });

  it("empties a slot whose load failed", () => {
    const pool = new SlotPool(1);
    pool.beginLoad(0, "a");
    pool.endLoad(0, false);
    expect(pool.entries()[0]).toMatchObject({ adapterId: null, state: "empty" });
    expect(pool.slotOf("a")).toBe(-1);
  });

  it("reuses the least recently pinned or loaded slot among ready ones", () => {
    const pool = new SlotPool(3);
    for (const [slot, id] of [
      [0, "a"],
      [1, "b"],
      [2, "c"],
    ] as const) {
      pool.beginLoad(slot, id);
      pool.endLoad(slot, true);
    }
    expect(pool.victim(new Set())).toBe(0);
    pool.pin(0);
    pool.unpin(0); // a pin is a use: a is now the most recent
    expect(pool.victim(new Set())).toBe(1);
    expect(pool.victim(new Set(["b"]))).toBe(2);
    pool.clear(2);
    expect(pool.victim(new Set())).toBe(2); // empty beats any ready one
  });

  it("counts as loading only the adapter being loaded, and neither reuses nor clears a loading slot", () => {
    const pool = new SlotPool(1);
    pool.beginLoad(0, "a");
    expect([pool.isLoading("a"), pool.isLoading("b")]).toEqual([true, false]);
    expect(pool.victim(new Set())).toBe(-1);
    expect(() => pool.clear(0)).toThrow("slot 0 is busy");
  });
});

describe("host tier", () => {
  it("refuses a negative or NaN budget; a budget of 0 keeps nothing", () => {
    expect(() => new HostTier(-1)).toThrow("host budget must be >= 0 bytes, got -1");
    expect(() => new HostTier(NaN)).toThrow(/got NaN/);
    const none = new HostTier(0);
    none.put("a", fake("a"), 0);
    expect([none.has("a"), none.get("a"), none.count, none.bytes]).toEqual([false, undefined, 0, 0]);
    none.delete("a");
  });

  it("tells of evictions by budget, not of deletions, and drops an entry that grows past the budget", () => {
    const evicted: string[] = [];
    const host = new HostTier(100, (id) => evicted.push(id));
    host.put("a", fake("a"), 60);
    host.put("b", fake("b"), 40);
    expect(host.bytes).toBe(100);
    host.put("c", fake("c"), 30); // a (least recent) goes
    expect(evicted).toEqual(["a"]);
    host.delete("b");
    expect(evicted).toEqual(["a"]);
    host.put("c", fake("c"), 101); // larger than the whole budget: not kept, the old copy dropped too
    expect([host.has("c"), host.count, host.bytes]).toEqual([false, 0, 0]);
    host.put("d", fake("d"), 100); // exactly the budget fits
    expect(host.get("d")).toEqual(fake("d"));
  });
});

describe("disk tier", () => {
  it("indexes only <64 hex>.olora files, stores each id once, and reads back verified bytes", async () => {
    const dir = await scratch();
    await writeFile(join(dir, "notes.olora"), "x");
    await writeFile(join(dir, `${"ab".repeat(32)}.olora.corrupt`), "x");
    await writeFile(join(dir, `${"cd".repeat(32)}.OLORA`), "x"); // an id and a suffix of six, but not ".olora"
    await writeFile(join(dir, "README"), "x");
    const disk = await DiskTier.open(join(dir, "new", "store"));
    expect(disk.count).toBe(0);
    expect(await disk.put(A.encoded)).toBe(A.adapter.id);
    expect(await disk.put(A.encoded)).toBe(A.adapter.id);
    expect([disk.count, disk.bytes, disk.sizeOf(A.adapter.id)]).toEqual([1, A.encoded.length, A.encoded.length]);
    expect(await readdir(disk.dir)).toEqual([`${A.adapter.id.slice(2)}.olora`]);
    expect(disk.pathOf(A.adapter.id)).toBe(join(disk.dir, `${A.adapter.id.slice(2)}.olora`));
    expect((await disk.read(A.adapter.id)).adapter).toEqual(A.adapter);
    expect(new Uint8Array((await disk.readBytes(A.adapter.id))!)).toEqual(A.encoded);

    const cluttered = await DiskTier.open(dir);
    expect(cluttered.count).toBe(0);
    await writeFile(join(dir, `${B.adapter.id.slice(2)}.olora`), B.encoded);
    const reopened = await DiskTier.open(dir);
    expect([...reopened.ids()]).toEqual([B.adapter.id]);
    expect(reopened.bytes).toBe(B.encoded.length);
  });

  it("refuses what it does not hold, and forgets (telling why) a file deleted or changed behind its back", async () => {
    const disk = await DiskTier.open(await scratch());
    const lost: [string, LostReason][] = [];
    disk.onLost = (id, reason) => lost.push([id, reason]);
    await expect(disk.read(A.adapter.id)).rejects.toThrow(/is not in the disk store/);
    expect(await disk.readBytes(A.adapter.id)).toBeNull();
    for (const x of [A, B, C]) await disk.put(x.encoded);
    await rm(disk.pathOf(A.adapter.id));
    await expect(disk.read(A.adapter.id)).rejects.toThrow(/was deleted: the adapter is no longer registered/);
    const file = disk.pathOf(B.adapter.id);
    const bytes = await readFile(file);
    bytes[bytes.length - 1] ^= 1;
    await writeFile(file, bytes);
    expect(await disk.readBytes(B.adapter.id)).toBeNull();
    expect(lost).toEqual([
      [A.adapter.id, "missing"],
      [B.adapter.id, "corrupted"],
    ]);
    await disk.put(D.encoded);
    const other = disk.pathOf(D.adapter.id);
    await writeFile(other, B.encoded); // another adapter's bytes under D's name
    await expect(disk.read(D.adapter.id)).rejects.toThrow(
      `adapter ${D.adapter.id}: disk file ${other} is corrupted: its sha256 is ${B.adapter.id}; moved aside, ` +
        "the adapter is no longer registered",
    );
    expect(lost.at(-1)).toEqual([D.adapter.id, "corrupted"]);
    expect((await readdir(disk.dir)).sort()).toEqual(
      [
        `${B.adapter.id.slice(2)}.olora.corrupt`,
        `${C.adapter.id.slice(2)}.olora`,
        `${D.adapter.id.slice(2)}.olora.corrupt`,
      ].sort(),
    );
    expect([disk.count, disk.bytes]).toEqual([1, C.encoded.length]);
    expect(await disk.readBytes(B.adapter.id)).toBeNull(); // told once only
    expect(lost).toHaveLength(3);
    await disk.remove(C.adapter.id);
    await disk.remove(C.adapter.id);
    expect([disk.count, disk.bytes, (await readdir(disk.dir)).sort()]).toEqual([
      0,
      0,
      [`${B.adapter.id.slice(2)}.olora.corrupt`, `${D.adapter.id.slice(2)}.olora.corrupt`].sort(),
    ]);
  });

  it("tells of a file found deleted once, however many reads find it gone at once", async () => {
    const disk = await DiskTier.open(await scratch());
    const lost: string[] = [];
    disk.onLost = (id) => lost.push(id);
    await disk.put(A.encoded);
    await rm(disk.pathOf(A.adapter.id));
    const reads = await Promise.allSettled([disk.read(A.adapter.id), disk.read(A.adapter.id)]);
    expect(reads.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(lost).toEqual([A.adapter.id]);
    expect([disk.count, disk.bytes]).toEqual([0, 0]);
  });

  it("keeps an adapter whose file could not be read for another reason than its absence", async () => {
    const disk = await DiskTier.open(await scratch());
    const lost: string[] = [];
    disk.onLost = (id) => lost.push(id);
    await disk.put(A.encoded);
    await rm(disk.pathOf(A.adapter.id));
    await mkdir(disk.pathOf(A.adapter.id)); // reading a folder fails with EISDIR, not ENOENT
    await expect(disk.read(A.adapter.id)).rejects.toMatchObject({ code: "EISDIR" });
    expect([disk.has(A.adapter.id), lost]).toEqual([true, []]);
  });

  it("removes an adapter's file at once, also one already gone, and leaves a file it does not index", async () => {
    const dir = await scratch();
    const disk = await DiskTier.open(dir);
    await disk.put(A.encoded);
    await disk.put(B.encoded);
    await disk.remove(A.adapter.id);
    expect(await readdir(dir)).toEqual([`${B.adapter.id.slice(2)}.olora`]);
    await rm(disk.pathOf(B.adapter.id)); // deleted behind its back, not yet noticed
    await disk.remove(B.adapter.id);
    expect([disk.count, disk.bytes, await readdir(dir)]).toEqual([0, 0, []]);
    await writeFile(disk.pathOf(C.adapter.id), C.encoded); // written after open: not indexed
    await disk.remove(C.adapter.id);
    expect(await readdir(dir)).toEqual([`${C.adapter.id.slice(2)}.olora`]);
  });
});

/** A store on a cpu backend of `slots` slots; every event recorded in order as "name id[ from]". */
async function openStore(
  slots: number,
  options: { hostBudgetBytes?: number; wrap?: (b: Backend) => Backend; prefetchAhead?: number } = {},
) {
  const inner = createCpuBackend(model.weights, { numBlocks: 8, blockSize: 16, adapterSlots: slots, maxRank: 4 });
  const backend = options.wrap ? options.wrap(inner) : inner;
  const store = await AdapterStore.open({
    dir: await scratch(),
    hostBudgetBytes: options.hostBudgetBytes ?? 1 << 24,
    backend,
    lock: new DeviceLock(),
    modelName: model.name,
    qkBasis: model.qkBasis,
    prefetchAhead: options.prefetchAhead,
  });
  const events: string[] = [];
  const names: (keyof AdapterEvents)[] = [
    "adapter:registered",
    "adapter:loaded",
    "adapter:load-failed",
    "adapter:evicted",
    "adapter:removed",
  ];
  for (const name of names)
    store.on(name, (e) => events.push(`${name.slice(8)} ${e.id}${"from" in e ? ` ${e.from}` : ""}`));
  return { store, events };
}

const loaded = (store: AdapterStore, id: string) => store.once("adapter:loaded", (e) => e.id === id);

/** Waits for background work (ahead-reads have no event) until `condition` holds; fails after 10 s. */
async function eventually(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 10_000) throw new Error("condition not reached in 10 s");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("adapter store", () => {
  it("registers canonical bytes once (also when added twice at once), checked against the model", async () => {
    const { store, events } = await openStore(1);
    const [a1, a2] = await Promise.all([store.add(A.encoded), store.add(A.encoded)]);
    expect(a1).toEqual({ id: A.adapter.id, rank: 2, bytes: A.encoded.length });
    expect(a2).toEqual(a1);
    expect(await store.add(A.encoded)).toEqual(a1);
    expect(events).toEqual([`registered ${A.adapter.id}`]);
    expect(store.has(A.adapter.id)).toBe(true);
    expect(store.list()).toEqual([{ id: A.adapter.id, tier: "host", bytes: A.encoded.length }]);
    const tooBig = lora(5, 8);
    await expect(store.add(tooBig.encoded, "peer Q")).rejects.toThrow(
      /^adapter peer Q: .*rank 8 exceeds the slot rank 4/,
    );
    await expect(store.add(new Uint8Array(30), "peer Q")).rejects.toThrow(/bad magic/);
    expect(store.has(tooBig.adapter.id)).toBe(false);
  });

  it("loads on request into a slot, evicting the least recently used, and reports every tier change", async () => {
    const { store, events } = await openStore(2);
    for (const x of [A, B, C]) await store.add(x.encoded);
    events.length = 0;
    await expect(store.load(`0x${"00".repeat(32)}`)).rejects.toThrow(/is not registered/);
    const [s1, s2] = await Promise.all([store.load(A.adapter.id), store.load(A.adapter.id)]);
    expect(s1).toBe(0);
    expect(s2).toBe(0);
    expect(await store.load(A.adapter.id)).toBe(0);
    expect(await store.load(B.adapter.id)).toBe(1);
    expect(store.pin(A.adapter.id)).toBe(0);
    expect(await store.load(C.adapter.id)).toBe(1); // B is the only unpinned one
    expect(events).toEqual([
      `loaded ${A.adapter.id}`,
      `loaded ${B.adapter.id}`,
      `evicted ${B.adapter.id} gpu`,
      `loaded ${C.adapter.id}`,
    ]);
    expect(store.tierOf(B.adapter.id)).toBe("host");
    store.pin(C.adapter.id);
    await expect(store.load(B.adapter.id)).rejects.toThrow("no slot is free: all 2 are pinned or loading");
    expect(() => store.pin(B.adapter.id)).toThrow(`adapter ${B.adapter.id} is not in a slot`);
    expect(store.slotStats().map((s) => [s.adapterId, s.pins, s.state])).toEqual([
      [A.adapter.id, 1, "ready"],
      [C.adapter.id, 1, "ready"],
    ]);
    expect(store.tierStats()).toEqual({
      disk: { adapters: 3, bytes: A.encoded.length + B.encoded.length + C.encoded.length },
      host: { adapters: 3, bytes: A.encoded.length + B.encoded.length + C.encoded.length, budgetBytes: 1 << 24 },
      gpu: { adapters: 2, slots: 2 },
    });
    store.unpin(0);
    store.unpin(1);
  });

  it("unloads to the disk tier (refused while pinned), waiting for a load in flight, and removes", async () => {
    const { store, events } = await openStore(1);
    await store.add(A.encoded);
    events.length = 0;
    const loading = store.load(A.adapter.id);
    expect(store.isLoading(A.adapter.id)).toBe(true);
    await store.unload(A.adapter.id); // waits for the load, then unloads
    expect(await loading).toBe(0);
    expect(store.tierOf(A.adapter.id)).toBe("disk");
    await store.unload(A.adapter.id); // in no slot and not in the host tier: nothing to tell
    await store.load(A.adapter.id);
    store.pin(A.adapter.id);
    await expect(store.unload(A.adapter.id)).rejects.toThrow(
      `adapter ${A.adapter.id}: is in use by 1 running sequence(s)`,
    );
    await expect(store.remove(A.adapter.id)).rejects.toThrow(/in use by 1/);
    store.unpin(0);
    await store.remove(A.adapter.id);
    await expect(store.remove(A.adapter.id)).rejects.toThrow(/is not registered/);
    expect([store.has(A.adapter.id), store.tierOf(A.adapter.id), store.list()]).toEqual([false, null, []]);
    expect(events).toEqual([
      `loaded ${A.adapter.id}`,
      `evicted ${A.adapter.id} gpu`,
      `evicted ${A.adapter.id} host`,
      `loaded ${A.adapter.id}`,
      `evicted ${A.adapter.id} gpu`,
      `evicted ${A.adapter.id} host`,
      `removed ${A.adapter.id}`,
    ]);
  });

  it("want(): loads the first wanted adapters into unpinned slots, keeps them, never evicts a pinned one", async () => {
    const { store } = await openStore(2);
    for (const x of [A, B, C, D]) await store.add(x.encoded);
    await store.load(A.adapter.id);
    store.pin(A.adapter.id);
    await store.load(B.adapter.id);
    // A is pinned (takes no room), one slot is unpinned: C comes in for B; D waits.
    const cIn = loaded(store, C.adapter.id);
    store.want([A.adapter.id, C.adapter.id, D.adapter.id]);
    await cIn;
    expect(store.readySlot(C.adapter.id)).toBe(1);
    expect([store.tierOf(A.adapter.id), store.tierOf(B.adapter.id), store.tierOf(D.adapter.id)]).toEqual([
      "gpu",
      "host",
      "host",
    ]);
    // Wanting C again (resident) with D after it changes nothing.
    store.want([C.adapter.id, D.adapter.id]);
    expect(store.isLoading(D.adapter.id)).toBe(false);
    store.unpin(0);
    // Now two unpinned slots: D comes in, in place of A (least recently used, not wanted), C stays.
    const dIn = loaded(store, D.adapter.id);
    store.want([D.adapter.id, C.adapter.id]);
    await dIn;
    expect([store.readySlot(D.adapter.id), store.readySlot(C.adapter.id), store.readySlot(A.adapter.id)]).toEqual([
      0, 1, -1,
    ]);
  });

  it("want(): reads adapters beyond the slots' reach into the host tier ahead, within half its budget", async () => {
    const size = A.encoded.length;
    const all = [A, B, C, D, E];
    expect(all.map((x) => x.encoded.length)).toEqual(all.map(() => size));
    // Budget for exactly 4 adapters: ahead-reads may fill half of it, 2 adapters (the second reaches it exactly);
    // prefetchAhead would allow more.
    const { store } = await openStore(1, { hostBudgetBytes: 4 * size, prefetchAhead: 10 });
    for (const x of all) await store.add(x.encoded);
    for (const x of all) await store.unload(x.adapter.id);
    expect(store.tierStats().host.adapters).toBe(0);
    const reads = vi.spyOn(store.disk, "read");
    const aIn = loaded(store, A.adapter.id);
    store.want(all.map((x) => x.adapter.id));
    // Reads start in want() itself: the two ahead, then A's for its slot.
    expect(reads.mock.calls.map(([id]) => id)).toEqual([B.adapter.id, C.adapter.id, A.adapter.id]);
    await aIn;
    await eventually(() => store.tierOf(B.adapter.id) === "host" && store.tierOf(C.adapter.id) === "host");
    expect([store.tierOf(D.adapter.id), store.tierOf(E.adapter.id)]).toEqual(["disk", "disk"]);
  });

  it("want(): reads ahead at most prefetchAhead adapters", async () => {
    const { store } = await openStore(1, { prefetchAhead: 1 });
    for (const x of [A, B, C]) await store.add(x.encoded);
    for (const x of [A, B, C]) await store.unload(x.adapter.id);
    const aIn = loaded(store, A.adapter.id);
    store.want([A.adapter.id, B.adapter.id, C.adapter.id]);
    await aIn;
    await eventually(() => store.tierOf(B.adapter.id) === "host");
    expect(store.tierOf(C.adapter.id)).toBe("disk");
  });

  it("a failed upload empties the slot and is reported; a closed store starts no loads", async () => {
    let fail = true;
    const { store, events } = await openStore(1, {
      wrap: (b) => ({
        ...b,
        setAdapter: async (slot, adapter) => {
          if (fail) throw new Error("device lost");
          return b.setAdapter(slot, adapter);
        },
      }),
    });
    await store.add(A.encoded);
    const failed = store.once("adapter:load-failed");
    await expect(store.load(A.adapter.id)).rejects.toThrow("device lost");
    expect(((await failed).error as Error).message).toBe("device lost");
    expect(store.slotStats()[0]).toMatchObject({ adapterId: null, state: "empty" });
    expect(events.at(-1)).toBe(`load-failed ${A.adapter.id}`);
    fail = false;
    await store.close();
    store.want([A.adapter.id]);
    expect(store.isLoading(A.adapter.id)).toBe(false);
  });

  it("drops from the host tier, and reports removed, an adapter whose file went bad", async () => {
    const { store, events } = await openStore(1);
    await store.add(A.encoded);
    const file = (await readdir(store.disk.dir)).find((n) => n.endsWith(".olora"))!;
    await writeFile(join(store.disk.dir, file), "garbage");
    expect(await store.readBytes(A.adapter.id)).toBeNull();
    expect([store.has(A.adapter.id), store.tierOf(A.adapter.id)]).toEqual([false, null]);
    expect(events.at(-1)).toBe(`removed ${A.adapter.id}`);
  });
});

describe("adapter store: want() and loads in detail", () => {
  it("want(): keeps a resident adapter wanted among the first, evicting one unwanted even if used later", async () => {
    const { store, events } = await openStore(2);
    for (const x of [A, B, C]) await store.add(x.encoded);
    await store.load(A.adapter.id); // slot 0, the least recently used
    expect(store.tierStats().gpu).toEqual({ adapters: 1, slots: 2 }); // one slot still empty
    await store.load(B.adapter.id); // slot 1
    events.length = 0;
    const cIn = loaded(store, C.adapter.id);
    const before = performance.now();
    store.want([A.adapter.id, C.adapter.id]);
    expect(store.slotStats().map((s) => [s.adapterId, s.state])).toEqual([
      [A.adapter.id, "ready"],
      [C.adapter.id, "loading"],
    ]);
    expect(store.tierStats().gpu).toEqual({ adapters: 1, slots: 2 }); // a loading slot is not counted
    const { ms } = await cIn;
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThanOrEqual(performance.now() - before);
    expect(events).toEqual([`evicted ${B.adapter.id} gpu`, `loaded ${C.adapter.id}`]);
  });

  it("want(): spends no read-ahead on an adapter in a slot but wanted after those that fill the slots", async () => {
    const size = A.encoded.length;
    // Room for 3 adapters in the host tier: 1.5 adapters of ahead-reads, so one.
    const { store } = await openStore(1, { hostBudgetBytes: 3 * size });
    await store.add(A.encoded);
    await store.load(A.adapter.id);
    for (const x of [B, C, D]) await store.add(x.encoded); // D pushes A out of the host tier; A stays in its slot
    for (const x of [C, D]) await store.unload(x.adapter.id);
    expect([store.tierOf(A.adapter.id), store.host.has(A.adapter.id), store.tierOf(B.adapter.id)]).toEqual([
      "gpu",
      false,
      "host",
    ]);
    const reads = vi.spyOn(store.disk, "read");
    const bIn = loaded(store, B.adapter.id);
    store.want([B.adapter.id, A.adapter.id, C.adapter.id]); // B takes A's slot; C is read ahead, not A
    expect(reads.mock.calls.map(([id]) => id)).toEqual([C.adapter.id]);
    await bIn;
    await eventually(() => store.tierOf(C.adapter.id) === "host");
    expect(store.tierOf(A.adapter.id)).toBe("disk");
  });

  it("want(): starts no load while every unpinned slot is still loading", async () => {
    const { store } = await openStore(1);
    for (const x of [A, B]) await store.add(x.encoded);
    const aIn = store.load(A.adapter.id);
    store.want([B.adapter.id]);
    expect([store.isLoading(A.adapter.id), store.isLoading(B.adapter.id)]).toEqual([true, false]);
    expect(await aIn).toBe(0);
  });

  it("reads an adapter from disk once for a read-ahead and a load that both want it", async () => {
    const { store } = await openStore(1);
    for (const x of [A, B]) await store.add(x.encoded);
    await store.load(A.adapter.id);
    store.pin(A.adapter.id);
    await store.unload(B.adapter.id);
    const reads = vi.spyOn(store.disk, "read");
    store.want([A.adapter.id, B.adapter.id]); // A pinned holds the only slot: B is read ahead
    store.unpin(0);
    expect(await store.load(B.adapter.id)).toBe(0); // starts while B's read is in flight, and shares it
    expect(reads.mock.calls.map(([id]) => id)).toEqual([B.adapter.id]);
  });

  it("reads the disk again for every load not served by the host tier: a file deleted since fails", async () => {
    const { store, events } = await openStore(1);
    await store.add(A.encoded);
    await store.unload(A.adapter.id);
    expect(await store.load(A.adapter.id)).toBe(0); // read from disk
    await store.unload(A.adapter.id);
    await rm(store.disk.pathOf(A.adapter.id));
    await expect(store.load(A.adapter.id)).rejects.toThrow(/was deleted: the adapter is no longer registered/);
    expect(events.at(-2)).toBe(`removed ${A.adapter.id}`);
    expect(events.at(-1)).toBe(`load-failed ${A.adapter.id}`);
  });

  it("close() waits for a load in flight, which then reports nothing", async () => {
    const { store, events } = await openStore(1);
    await store.add(A.encoded);
    await store.unload(A.adapter.id); // on disk only: the load reads the file
    events.length = 0;
    const aIn = store.load(A.adapter.id);
    await store.close();
    expect(store.slotStats()[0]).toMatchObject({ adapterId: A.adapter.id, state: "ready" });
    expect(await aIn).toBe(0);
    expect(events).toEqual([]);
  });
});

describe("adapter store: defaults and the host budget", () => {
  it("reports an adapter the host tier's budget pushes out as evicted from host", async () => {
    const { store, events } = await openStore(1, { hostBudgetBytes: Math.floor(1.5 * A.encoded.length) });
    await store.add(A.encoded);
    await store.add(B.encoded);
    expect(events).toEqual([
      `registered ${A.adapter.id}`,
      `evicted ${A.adapter.id} host`,
      `registered ${B.adapter.id}`,
    ]);
    expect(store.tierOf(A.adapter.id)).toBe("disk");
  });

  it("reads ahead twice as many adapters as it has slots by default", async () => {
    const more = [5, 6, 7].map((seed) => lora(seed));
    const all = [A, B, C, D, ...more];
    const { store } = await openStore(2);
    for (const x of all) await store.add(x.encoded);
    for (const x of all) await store.unload(x.adapter.id);
    const bothIn = Promise.all([loaded(store, A.adapter.id), loaded(store, B.adapter.id)]);
    store.want(all.map((x) => x.adapter.id));
    await bothIn;
    // Two slots: A and B load; the next four (2 x 2) are read into the host tier; the seventh stays on disk.
    await eventually(() => [C, D, ...more.slice(0, 2)].every((x) => store.tierOf(x.adapter.id) === "host"));
    expect(store.tierOf(more[2].adapter.id)).toBe("disk");
  });

  it("registers an adapter again after it was removed", async () => {
    const { store, events } = await openStore(1);
    await store.add(A.encoded);
    await store.remove(A.adapter.id);
    expect(store.has(A.adapter.id)).toBe(false);
    await store.add(A.encoded);
    expect(store.has(A.adapter.id)).toBe(true);
    expect(events.filter((e) => e.startsWith("registered"))).toEqual([
      `registered ${A.adapter.id}`,
      `registered ${A.adapter.id}`,
    ]);
  });

  it("names bytes added without a source 'canonical bytes' in its errors", async () => {
    const { store } = await openStore(1);
    await expect(store.add(new Uint8Array(30))).rejects.toThrow(/^adapter canonical bytes: .*bad magic/);
  });
});
