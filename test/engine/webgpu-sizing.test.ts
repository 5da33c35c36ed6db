// KV blocks and adapter slots of the webgpu backend sized from the device (device-memory.ts planBackendCapacity,
// runtime/sizing.ts planCapacity), on lavapipe where there is no GPU: a requested smaller binding limit and an
// injected memory budget move the sizes by the arithmetic stated here (not by the code's own helpers), the model
// alone over the budget is refused by name, and an engine serves at the computed sizes what the cpu backend gives.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import {
  createWebGpuBackend,
  webgpuAvailable,
  type WebGpuBackend,
} from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { qDimOf } from "../../node/engine/model/config.ts";
import { complete } from "../../node/engine/runtime/complete.ts";
import { Engine } from "../../node/engine/runtime/engine.ts";
import { CapacityError, planCapacity } from "../../node/engine/runtime/sizing.ts";
import { STORIES_DIR, stories } from "../helpers/stories.ts";

const model = await stories();
const config = model.weights.config;
const BLOCK = 16;
const RANK = 8;
const kvDim = config.nKvHeads * config.headDim;
/** One block of one layer's K (or V) pool: the unit of the binding limit. */
const poolRow = BLOCK * kvDim * 4;
/** One block of every layer's K and V. */
const blockBytes = 2 * config.nLayers * poolRow;
/** A full context in blocks. */
const context = Math.ceil(config.maxSeqLen / BLOCK);
/** The largest per-slot binding: each LoRA group's A [targets x rank, in] and B [out, rank] pool, float32. */
const qDim = qDimOf(config);
const largestSlotBinding =
  4 *
  RANK *
  Math.max(3 * config.dim, qDim + 2 * kvDim, qDim, config.dim, 2 * config.dim, 2 * config.hiddenDim, config.hiddenDim);

const opened: WebGpuBackend[] = [];
afterAll(async () => {
  for (const backend of opened) await backend.close();
});
async function open(options: Parameters<typeof createWebGpuBackend>[1]): Promise<WebGpuBackend> {
  const backend = await createWebGpuBackend(model.weights, options);
  opened.push(backend);
  return backend;
}

describe("webgpu sizes from the device", () => {
  it("a smaller binding limit caps the KV blocks and the slots: one layer's pool and one slot pool a binding", async () => {
    expect(await webgpuAvailable(), "no WebGPU adapter: scripts/setup.sh fetches lavapipe").toBe(true);
    const maxBindingBytes = (context + 8) * poolRow;
    const backend = await open({ blockSize: BLOCK, maxRank: RANK, maxBindingBytes, memoryBudget: 2 ** 30 });
    expect(backend.options.numBlocks).toBe(context + 8);
    expect(backend.options.adapterSlots).toBe(Math.floor(maxBindingBytes / largestSlotBinding));
    expect(backend.options.adapterSlots).toBeGreaterThan(0);
    // Asked for more than a binding holds: refused before any allocation, naming the limit.
    await expect(
      createWebGpuBackend(model.weights, { blockSize: BLOCK, maxRank: RANK, maxBindingBytes, numBlocks: context + 9 }),
    ).rejects.toThrow(new RegExp(`${context + 9} KV blocks exceed the ${context + 8} one binding`));
  });

  it("without a tighter limit, the blocks follow the budget: each block's bytes more buys one more block", async () => {
    const base = { blockSize: BLOCK, maxRank: RANK, adapterSlots: 2, sequences: 64 };
    const small = await open({ ...base, memoryBudget: 8 * 2 ** 20 });
    // The reserve keeps 5% of what the model leaves: 10 blocks more need 10 / 0.95 blocks' bytes of budget.
    const larger = await open({ ...base, memoryBudget: 8 * 2 ** 20 + Math.ceil((10 * blockBytes) / 0.95) });
    expect(small.options.numBlocks).toBeGreaterThanOrEqual(context);
    expect(larger.options.numBlocks - small.options.numBlocks).toBeGreaterThanOrEqual(9);
    expect(larger.options.numBlocks - small.options.numBlocks).toBeLessThanOrEqual(11);
    for (const backend of [small, larger]) {
      expect(backend.memoryBytes).toBeLessThanOrEqual(backend.memoryBudget);
      expect(backend.memoryBytes).toBeGreaterThanOrEqual(backend.weightBytes + backend.options.numBlocks * blockBytes);
    }
    // A budget far beyond the model: the pool stops at a full context for each of the sequences served.
    const roomy = await open({ ...base, memoryBudget: 2 ** 30, sequences: 3 });
    expect(roomy.options.numBlocks).toBe(3 * context);
  });

  it("refuses a budget the model alone exceeds, and one that leaves no full context, by name", async () => {
    const tiny = createWebGpuBackend(model.weights, { blockSize: BLOCK, maxRank: RANK, memoryBudget: 100_000 });
    await expect(tiny).rejects.toBeInstanceOf(CapacityError);
    await expect(
      createWebGpuBackend(model.weights, { blockSize: BLOCK, maxRank: RANK, memoryBudget: 100_000 }),
    ).rejects.toThrow(/the model alone takes .* GiB of device memory, more than the budget of 0\.00 GiB/);
    // Weights and step buffers fit, a full context beside them does not.
    const first = opened[0];
    const justModel = first.memoryBytes - first.options.numBlocks * blockBytes;
    await expect(
      createWebGpuBackend(model.weights, {
        blockSize: BLOCK,
        maxRank: RANK,
        adapterSlots: 0,
        memoryBudget: justModel + 4 * blockBytes,
      }),
    ).rejects.toThrow(new RegExp(`one full context needs ${context}`));
    await expect(
      createWebGpuBackend(model.weights, { blockSize: BLOCK, maxRank: RANK, memoryBudget: -1 }),
    ).rejects.toThrow(/memoryBudget must be a positive number of bytes, got -1/);
  });

  it("an engine runs at the computed sizes and gives each request what the cpu backend gives", async () => {
    const backend = await open({ blockSize: BLOCK, maxRank: 16, memoryBudget: 2 ** 30, sequences: 2 });
    const { numBlocks, adapterSlots } = backend.options;
    expect(numBlocks).toBe(2 * context);
    expect(adapterSlots).toBe(2);
    const cpu = createCpuBackend(model.weights, backend.options);
    const dir = await mkdtemp(join(tmpdir(), "webgpu-sizing-"));
    const engines: Engine[] = [];
    try {
      for (const [name, b] of [
        ["gpu", backend],
        ["cpu", cpu],
      ] as const) {
        engines.push(
          await Engine.create({
            backend: b,
            tokenizer: model.tokenizer,
            modelName: model.name,
            adapterDir: join(dir, name),
          }),
        );
      }
      const [gpuEngine] = engines;
      expect(gpuEngine.limits.kvPositions).toBe(numBlocks * BLOCK);
      expect(gpuEngine.limits.adapterSlots).toBe(adapterSlots);
      const outputs: number[][][] = [];
      for (const engine of engines) {
        engine.start();
        const ids = [];
        for (const name of ["dragon", "ocean", "robot"])
          ids.push((await engine.adapters.import(join(STORIES_DIR, "adapters", name))).id);
        // Four requests over three adapters and the base: more adapters than slots, all at once.
        const results = await Promise.all(
          [ids[0], ids[1], ids[2], null].map((adapterId, i) =>
            complete(engine, { adapterId, prompt: "Once upon a time", maxTokens: 24 + 8 * i, temperature: 0 }),
          ),
        );
        outputs.push(results.map((r) => r.tokenIds));
      }
      expect(outputs[0]).toEqual(outputs[1]);
      expect(gpuEngine.stats().tiers.gpu.slots).toBe(adapterSlots);
    } finally {
      for (const engine of engines) await engine.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("an unknown budget (a hardware adapter: WebGPU reports no memory size) sizes by the caps alone", () => {
    const plan = { config, deviceBytes: Infinity, weightBytes: 1e9, maxRank: RANK, blockSize: BLOCK };
    expect(
      planCapacity({ ...plan, maxBlocks: 5000, usefulBlocks: 64 * context, maxSlots: 300, usefulSlots: 64 }),
    ).toEqual({ numBlocks: Math.min(5000, 64 * context), adapterSlots: 64 });
    expect(planCapacity({ ...plan, maxBlocks: 40, usefulBlocks: 64 * context, maxSlots: 3, usefulSlots: 64 })).toEqual({
      numBlocks: 40,
      adapterSlots: 3,
    });
    expect(() => planCapacity({ ...plan, maxBlocks: context - 1, usefulBlocks: 64 * context, usefulSlots: 4 })).toThrow(
      new RegExp(`a binding of the device holds ${context - 1} KV blocks; one full context needs ${context}`),
    );
    expect(() => planCapacity({ ...plan, usefulSlots: 4 })).toThrow(/an unknown budget needs finite caps/);
  });
});
