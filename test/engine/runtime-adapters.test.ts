import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import { loadPeftAdapter } from "../../node/engine/adapter/peft.ts";
import { writeRandomPeftAdapter } from "../../node/engine/adapter/random-adapter.ts";
import { AdapterError } from "../../node/engine/errors.ts";
import { HostTier } from "../../node/engine/runtime/adapter-store/host-tier.ts";
import { SlotPool } from "../../node/engine/runtime/adapter-store/slot-pool.ts";
import { kvBlockBytes, planCapacity, slotBytes } from "../../node/engine/runtime/sizing.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";
import { randomLora } from "../../scripts/bench/random-adapters.ts";
import { STORIES_DIR, stories } from "../helpers/stories.ts";
import { closedAfterEachTest, collect, expectIdle, runAlone } from "./runtime-helpers.ts";

const engineWith = closedAfterEachTest();

describe("a thousand adapters", () => {
  it("serves requests over 1,000 registered adapters with 4 GPU slots: all complete, and match running alone", async () => {
    const model = await stories();
    const config = model.weights.config;
    // Host tier of ~12 adapters: most requests read their adapter from disk.
    const { engine } = await engineWith({
      adapterSlots: 4,
      maxRank: 4,
      hostBudgetBytes: 1_000_000,
      numBlocks: 128,
      blockSize: 8,
    });
    const adapters: LoraAdapter[] = [];
    const peftDir = await mkdtemp(join(tmpdir(), "openlora-peft-"));
    for (let i = 0; i < 1000; i++) {
      const rank = 2 + (i % 3);
      if (i < 20) {
        // Some through the PEFT path, the way an operator imports them.
        const dir = join(peftDir, `a${i}`);
        await writeRandomPeftAdapter(dir, config, { rank, seed: i, baseModel: model.name });
        const info = await engine.adapters.import(dir);
        adapters.push(
          (await loadPeftAdapter(dir, { config, name: model.name, qkBasis: model.qkBasis, maxRank: 4 })).adapter,
        );
        expect(info.id).toBe(adapters[i].id);
      } else {
        const { adapter, encoded } = randomLora(config, {
          rank,
          seed: i,
          bScale: 0.3,
          targets: i % 2 ? ["q", "v", "down"] : undefined,
        });
        expect((await engine.adapters.add(encoded)).id).toBe(adapter.id);
        adapters.push(adapter);
      }
    }
    expect(new Set(adapters.map((a) => a.id)).size).toBe(1000);
    expect(engine.stats().tiers.disk.adapters).toBe(1000);

    // One request per adapter, plus a skewed tail on a few popular ones, in a shuffled order.
    const rng = createRng(7);
    const prompts = ["Once upon a time", "The cat", "Lily saw a"].map((p) => model.tokenizer.encode(p, { bos: true }));
    const jobs = [...adapters.map((_, i) => i), ...Array.from({ length: 100 }, () => Math.floor(rng() * rng() * 50))]
      .map((a) => ({ a, tokenIds: prompts[Math.floor(rng() * prompts.length)], r: rng() }))
      .sort((x, y) => x.r - y.r);
    const streams = jobs.map((job) =>
      engine.submit({ adapterId: adapters[job.a].id, tokenIds: job.tokenIds, maxTokens: 4, temperature: 0 }),
    );
    const results = await Promise.all(streams.map(collect));
    expect(results.every((r) => r.usage.finishReason === "length" || r.usage.finishReason === "eos")).toBe(true);

    const stats = engine.stats();
    expect(stats.completed).toBe(jobs.length);
    expect(stats.tiers.host.bytes).toBeLessThanOrEqual(1_000_000);
    expect(stats.tiers.gpu.adapters).toBeLessThanOrEqual(4);
    expectIdle(engine);

    const sample = Array.from({ length: 12 }, (_, i) => Math.floor((i * jobs.length) / 12));
    const distinct = new Set<string>();
    for (const i of sample) {
      const alone = await runAlone(adapters[jobs[i].a], { tokenIds: jobs[i].tokenIds, maxTokens: 4 });
      expect(results[i].tokenIds, `job ${i}`).toEqual(alone.tokenIds);
      distinct.add(alone.tokenIds.join());
    }
    expect(distinct.size).toBeGreaterThan(3); // the adapters do change the output
  });
});

describe("adapter tiers", () => {
  it("keeps the disk tier content-addressed: re-indexed on restart, a corrupted file refused while others are served", async () => {
    const model = await stories();
    const first = await engineWith({ adapterSlots: 2 });
    const good = randomLora(model.weights.config, { rank: 4, seed: 1, bScale: 0.3 });
    const bad = randomLora(model.weights.config, { rank: 4, seed: 2, bScale: 0.3 });
    await first.engine.adapters.add(good.encoded);
    await first.engine.adapters.add(bad.encoded);
    await first.engine.close();

    // Flip one byte of the second adapter's file, then reopen the store.
    const file = join(first.dir, bad.adapter.id.slice(2) + ".olora");
    const bytes = await readFile(file);
    bytes[bytes.length - 5] ^= 0x40;
    await writeFile(file, bytes);
    const { engine } = await engineWith({ adapterSlots: 2, dir: first.dir });
    expect(
      engine.adapters
        .list()
        .map((a) => a.id)
        .sort(),
    ).toEqual([good.adapter.id, bad.adapter.id].sort());
    expect(engine.adapters.list().every((a) => a.tier === "disk")).toBe(true);

    const tokenIds = model.tokenizer.encode("Once upon a time", { bos: true });
    const ok = engine.submit({ adapterId: good.adapter.id, tokenIds, maxTokens: 8, temperature: 0 });
    const refused = engine.submit({ adapterId: bad.adapter.id, tokenIds, maxTokens: 8, temperature: 0 });
    const error = await refused.result.catch((e) => e);
    expect(error).toBeInstanceOf(AdapterError);
    expect(error.message).toMatch(/corrupted: its sha256 is 0x/);
    expect((await collect(ok)).tokenIds).toEqual((await runAlone(good.adapter, { tokenIds, maxTokens: 8 })).tokenIds);
    expect(engine.adapters.list().find((a) => a.id === good.adapter.id)!.tier).toBe("gpu");
    expectIdle(engine);
  });

  it("refuses adapters that do not fit the model, loads and unloads on request, and never unloads a pinned one", async () => {
    const model = await stories();
    const { engine } = await engineWith({ adapterSlots: 1, maxRank: 8 });
    const wrongShape = randomLora({ ...model.weights.config, dim: 32, nHeads: 4, headDim: 8 }, { rank: 4, seed: 3 });
    await expect(engine.adapters.add(wrongShape.encoded)).rejects.toThrow(AdapterError);
    const tooBig = randomLora(model.weights.config, { rank: 16, seed: 3 });
    await expect(engine.adapters.add(tooBig.encoded)).rejects.toThrow(/rank 16 exceeds the slot rank 8/);
    await expect(engine.adapters.import(join(STORIES_DIR, "adapters", "nonexistent"))).rejects.toThrow(AdapterError);

    const events: string[] = [];
    for (const name of ["adapter:registered", "adapter:loaded", "adapter:evicted", "adapter:removed"] as const) {
      engine.on(name, (e) => events.push(`${name} ${"from" in e ? e.from : ""}`.trim()));
    }
    const dragon = await engine.adapters.import(join(STORIES_DIR, "adapters", "dragon"));
    const { bytes } = dragon;
    expect(engine.adapters.list()).toEqual([{ id: dragon.id, tier: "host", bytes }]);
    await engine.adapters.load(dragon.id);
    expect(engine.adapters.list()).toEqual([{ id: dragon.id, tier: "gpu", bytes }]);
    const stream = engine.submit({ adapterId: dragon.id, prompt: "Once", maxTokens: 100, temperature: 0 });
    for await (const event of stream) {
      if (event.type !== "token") continue;
      await expect(engine.adapters.unload(dragon.id)).rejects.toThrow(/in use by 1 running sequence/);
      break; // leaving the loop does not cancel; the request runs on
    }
    await stream.result;
    await engine.adapters.unload(dragon.id);
    expect(engine.adapters.list()).toEqual([{ id: dragon.id, tier: "disk", bytes }]);
    expectIdle(engine);
    expect(await engine.adapters.readBytes(dragon.id)).toHaveLength(bytes);

    // Removal: refused while a request waits on the adapter, then the id is gone from every tier.
    const waiting = engine.submit({ adapterId: dragon.id, prompt: "Once", maxTokens: 5, temperature: 0 });
    await expect(engine.adapters.remove(dragon.id)).rejects.toThrow(/in use by 1 queued or running request/);
    await waiting.result;
    await engine.adapters.remove(dragon.id);
    expect(engine.adapters.list()).toEqual([]);
    expect(engine.adapters.has(dragon.id)).toBe(false);
    expect(await engine.adapters.readBytes(dragon.id)).toBeNull();
    expect(() => engine.submit({ adapterId: dragon.id, prompt: "x", maxTokens: 1 })).toThrow(/not registered/);
    expect(events).toEqual([
      "adapter:registered",
      "adapter:loaded",
      "adapter:evicted gpu",
      "adapter:evicted host",
      "adapter:loaded", // the waiting request brought it back from disk (through the host tier)
      "adapter:evicted gpu",
      "adapter:evicted host",
      "adapter:removed",
    ]);
  });

  it("reports every finished request with its usage and every step with its timing", async () => {
    const { engine } = await engineWith();
    const finished: { requestId: number; tokens: number; reason: string }[] = [];
    const steps: { rows: number; tokens: number; sampled: number }[] = [];
    engine.on("request:finished", (e) =>
      finished.push({ requestId: e.requestId, tokens: e.usage.completionTokens, reason: e.usage.finishReason }),
    );
    engine.on("step", (e) => steps.push({ rows: e.rows, tokens: e.tokens, sampled: e.sampled }));
    const a = engine.submit({ adapterId: null, prompt: "Once upon a time", maxTokens: 6, temperature: 0 });
    const b = engine.submit({ adapterId: null, prompt: "The dog", maxTokens: 3, temperature: 0 });
    const cancelled = new AbortController();
    cancelled.abort();
    const c = engine.submit({ adapterId: null, prompt: "x", maxTokens: 3, signal: cancelled.signal });
    await Promise.all([a.result, b.result, c.result]);
    expect(finished.sort((x, y) => x.requestId - y.requestId)).toEqual([
      { requestId: a.id, tokens: 6, reason: "length" },
      { requestId: b.id, tokens: 3, reason: "length" },
      { requestId: c.id, tokens: 0, reason: "cancelled" },
    ]);
    // Both requests shared the first step (two prefill rows), then decoded together until b was done.
    expect(steps[0]).toEqual({
      rows: 2,
      tokens: (await a.result).promptTokenIds.length + (await b.result).promptTokenIds.length,
      sampled: 2,
    });
    expect(steps.reduce((n, s) => n + s.sampled, 0)).toBe(9);
  });

  it("host tier: LRU by bytes within the budget", () => {
    const host = new HostTier(300);
    const fake = (id: string) => ({ id }) as unknown as LoraAdapter;
    host.put("a", fake("a"), 100);
    host.put("b", fake("b"), 100);
    host.put("c", fake("c"), 100);
    expect(host.get("a")).toBeDefined(); // a is now the most recent
    host.put("d", fake("d"), 100); // evicts b, the least recently used
    expect(["a", "b", "c", "d"].filter((id) => host.has(id))).toEqual(["a", "c", "d"]);
    host.put("big", fake("big"), 301); // larger than the budget: not kept, nothing evicted
    expect(host.bytes).toBe(300);
    expect(host.count).toBe(3);
  });

  it("slot pool: reuses an empty slot first, then the least recently used unpinned one, never a pinned or kept one", () => {
    const pool = new SlotPool(3);
    for (const [slot, id] of [
      [0, "a"],
      [1, "b"],
    ] as const) {
      pool.beginLoad(slot, id);
      pool.endLoad(slot, true);
    }
    expect(pool.victim(new Set())).toBe(2); // empty first
    pool.beginLoad(2, "c");
    expect(pool.victim(new Set())).toBe(0); // c is loading; a is older than b
    pool.endLoad(2, true);
    pool.pin(0);
    expect(pool.victim(new Set())).toBe(1);
    expect(pool.victim(new Set(["b"]))).toBe(2);
    expect(pool.victim(new Set(["b", "c"]))).toBe(-1);
    expect(() => pool.clear(0)).toThrow(/busy/);
    pool.unpin(0);
    expect(pool.victim(new Set(["b", "c"]))).toBe(0);
  });
});

describe("capacity planning", () => {
  it("derives the slot count and KV pool from the memory left after the backbone", async () => {
    const config = (await stories()).weights.config;
    const slot = slotBytes(config, 8);
    const block = kvBlockBytes(config, 16);
    expect(slot).toBe(4 * 5 * 8 * (128 + 96 + 96 + 128 + 236 + 236 + 236));
    const plan = planCapacity({
      config,
      deviceBytes: 10e6 + 2e6,
      weightBytes: 2e6,
      maxRank: 8,
      blockSize: 16,
      reserveShare: 0,
    });
    expect(plan.adapterSlots).toBe(Math.floor(1e6 / slot));
    expect(plan.numBlocks).toBe(Math.floor((10e6 - plan.adapterSlots * slot) / block));
    expect(
      planCapacity({ config, deviceBytes: 12e6, weightBytes: 2e6, maxRank: 8, blockSize: 16, adapterSlots: 4 })
        .adapterSlots,
    ).toBe(4);
    expect(() => planCapacity({ config, deviceBytes: 2.1e6, weightBytes: 2e6, maxRank: 8, blockSize: 16 })).toThrow(
      /one full context needs 32/,
    );
  });
});
