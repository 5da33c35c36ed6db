// The per-kernel step profile of the webgpu backend (step-profile.ts) on stories260K, on lavapipe where there is no
// GPU: the dispatches it times are the ones the step ran (every layer's kernels in order, once per pass), every
// duration is a number >= 0, and timing a step changes none of its results.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SamplingParams, SequenceStep } from "../../node/engine/backend/backend.ts";
import {
  createWebGpuBackend,
  webgpuAvailable,
  type WebGpuBackend,
} from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { kernelTotals, type DispatchTime } from "../../node/engine/backend/webgpu/step-profile.ts";
import { demoAdapter, stories } from "../helpers/stories.ts";

const OPTIONS = { numBlocks: 32, blockSize: 16, adapterSlots: 2, maxRank: 16, maxRowsPerPass: 8 };
const model = await stories();
const config = model.weights.config;
const prompt = model.tokenizer.encode("Once upon a time there was a little dragon", {
  bos: true,
} as never) as unknown as number[];
const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1 };

/** The sites every layer dispatches, in order (others, such as rope or kv-store, may run between them). */
const LAYER_SITES = ["attnNorm", "wqkv", "attention", "wo", "ffnNorm", "wgu", "swiglu", "wdown"];

let gpu: WebGpuBackend;

beforeAll(async () => {
  expect(await webgpuAvailable(), "no WebGPU adapter: scripts/setup.sh fetches lavapipe").toBe(true);
  gpu = await createWebGpuBackend(model.weights, OPTIONS);
  await gpu.setAdapter(0, await demoAdapter("dragon", OPTIONS.maxRank));
});
afterAll(async () => {
  await gpu?.close();
});

/** The site's name without layer index and weight chunk ("wqkv3.mv0" -> "wqkv"). */
const base = (d: DispatchTime): string => d.site.replace(/^([A-Za-z]+)\d+/, "$1").replace(/\.m[mv]\d+$/, "");

/** The LAYER_SITES among the dispatches, a matrix split into chunks (one dispatch each) named once. */
const layerSites = (d: readonly DispatchTime[]): string[] =>
  d.filter((x) => LAYER_SITES.includes(base(x)) && !/\.m[mv][1-9]\d*$/.test(x.site)).map(base);

/** The layer skeleton of a pass: LAYER_SITES once per layer. */
const skeleton = (passes: number): string[] =>
  Array.from({ length: passes * config.nLayers }, () => LAYER_SITES).flat();

describe("webgpu step profile (timestamp queries)", () => {
  it("times every dispatch of a decode step, in the order the step ran them, and samples what sample() does", async () => {
    const blockTable = [0, 1, 2, 3];
    const prefill: SequenceStep = { tokens: prompt.slice(0, 6), position: 0, blockTable, slot: -1 };
    const [first] = await gpu.sample([prefill], [GREEDY], new Float32Array(1));
    const decode: SequenceStep[] = [{ tokens: [first], position: 6, blockTable, slot: -1 }];
    const plain = await gpu.sample(decode, [GREEDY], new Float32Array(1));
    const { ids, profile } = await gpu.profileSample(decode, [GREEDY], new Float32Array(1));
    expect(Array.from(ids)).toEqual(Array.from(plain));
    expect(profile.source).toBe("timestamps");
    const d = profile.dispatches;
    expect(d[0].kernel).toBe("embed");
    expect(d.at(-1)!.kernel).toBe("sample");
    expect(layerSites(d)).toEqual(skeleton(1));
    // One row: the linear layers run the matvec kernel; no adapter in the step, so no SGMV.
    expect(d.filter((x) => base(x) === "wqkv").every((x) => x.kernel.startsWith("matvec"))).toBe(true);
    expect(d.some((x) => x.kernel.startsWith("sgmv"))).toBe(false);
    expect(d.filter((x) => base(x) === "finalNorm")).toHaveLength(1);
    for (const x of d) {
      expect(typeof x.ms).toBe("number");
      expect(x.ms!).toBeGreaterThanOrEqual(0);
    }
    expect(d.reduce((n, x) => n + x.ms!, 0)).toBeGreaterThan(0);
    // Dawn's timestamp quantization (to 2^16 ns) is off: kernels of microseconds must not read as 0 or 65.5 us.
    expect(d.some((x) => Math.round(x.ms! * 1e6) % 65536 !== 0)).toBe(true);
    expect(profile.hostMs).toBeGreaterThan(0);
    expect(profile.wallMs).toBeGreaterThanOrEqual(profile.hostMs);
    // Totals fold the layers together: one entry per kernel and kind of site, counts summing to the dispatches.
    const totals = kernelTotals(d);
    expect(totals.find((t) => t.name === "rmsnorm attnNorm")?.dispatches).toBe(config.nLayers);
    expect(totals.reduce((n, t) => n + t.dispatches, 0)).toBe(d.length);
  });

  it("a prefill longer than one pass is timed pass by pass, with the adapter's SGMV per LoRA group", async () => {
    // 11 tokens at 8 rows a pass: two passes, the sequence's end (final norm, classifier, sample) in the second.
    const steps: SequenceStep[] = [{ tokens: prompt.slice(0, 11), position: 0, blockTable: [4, 5], slot: 0 }];
    const plain = await gpu.sample(steps, [GREEDY], new Float32Array(1));
    const { ids, profile } = await gpu.profileSample(steps, [GREEDY], new Float32Array(1));
    expect(Array.from(ids)).toEqual(Array.from(plain));
    const d = profile.dispatches;
    expect(d.filter((x) => x.kernel === "embed")).toHaveLength(2);
    expect(layerSites(d)).toEqual(skeleton(2));
    // 8 rows: the matmul kernel; then 3 rows: matvec. Shrink + expand for each LoRA group of each layer.
    const wqkv = d.filter((x) => base(x) === "wqkv" && !/\.m[mv][1-9]\d*$/.test(x.site)).map((x) => x.kernel);
    expect(wqkv.slice(0, config.nLayers).every((k) => k.startsWith("matmul"))).toBe(true);
    expect(wqkv.slice(config.nLayers).every((k) => k.startsWith("matvec"))).toBe(true);
    const totals = kernelTotals(d);
    for (const group of ["q|k|v", "o", "gate|up", "down"]) {
      expect(totals.find((t) => t.name === `sgmv-shrink ${group}`)?.dispatches).toBe(2 * config.nLayers);
      expect(totals.find((t) => t.name === `sgmv-expand ${group}`)?.dispatches).toBe(2 * config.nLayers);
    }
    expect(d.filter((x) => x.kernel === "sample")).toHaveLength(1);
    expect(d.every((x) => x.ms !== null && x.ms >= 0)).toBe(true);
  });

  it("without timestamps (not asked, or an adapter lacking the feature) reports host and wall time only", async () => {
    const steps: SequenceStep[] = [{ tokens: prompt.slice(0, 3), position: 0, blockTable: [6], slot: -1 }];
    const plain = await gpu.sample(steps, [GREEDY], new Float32Array(1));
    const { ids, profile } = await gpu.profileSample(steps, [GREEDY], new Float32Array(1), { timestamps: false });
    expect(Array.from(ids)).toEqual(Array.from(plain));
    expect(profile.source).toBe("wall");
    expect(profile.dispatches).toEqual([]);
    expect(profile.wallMs).toBeGreaterThanOrEqual(profile.hostMs);
  });

  it("refuses sampling params that do not match the steps, as sample() does", async () => {
    const steps: SequenceStep[] = [{ tokens: [1], position: 0, blockTable: [7], slot: -1 }];
    await expect(gpu.profileSample(steps, [], new Float32Array(1))).rejects.toThrow(/1 sequences, 0 sampling params/);
  });
});
