// `npm run bench [-- --quick] [--backend cpu|webgpu|auto] [--model <path>] [--shape quick|default|1b]
//   [--weights f16|f32|bf16|q8_0|q4_0|q4_k|q6_k]` (the random model's format; f16 by default)
// Runs the serving benchmarks through the engine and writes bench/results.json and this run's table in
// BENCHMARKS.md. See BENCHMARKS.md for what each figure means.
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { decodeAdapter } from "../node/engine/adapter/canonical.ts";
import { BACKEND_CHOICES, createBackend, type BackendChoice } from "../node/engine/backend/select.ts";
import { Engine } from "../node/engine/runtime/engine.ts";
import { ensureAdapterSet } from "./bench/adapter-set.ts";
import { copyBandwidth } from "./bench/copy.ts";
import { decodeStepBytes } from "./bench/step-bytes.ts";
import { engineOverheadMs } from "./bench/overhead.ts";
import { benchModel } from "./bench/model.ts";
import type { WeightDType } from "../node/engine/model/weights.ts";
import { writeMarkdown, writeResults, type BenchResults, type Goals } from "./bench/report.ts";
import { percentile, residentMemory, round } from "./bench/stats.ts";
import { coldLoads, decodeThroughput, prompts, timeToFirstToken, zipfLoad } from "./bench/workloads.ts";
import { scriptArgs } from "./script-args.ts";

const root = resolve(import.meta.dirname, "..");
const values = scriptArgs(
  "The serving benchmark: copy bandwidth, decode tok/s (base, one adapter, distinct adapters), adapter cold loads, " +
    "time to first token, a Zipf workload, memory; JSON and a BENCHMARKS.md section.",
  "npm run bench -- [--quick] [--backend auto|cpu|simd|webgpu] [--shape NAME | --model PATH] [--weights FORMAT]",
  {
    quick: { type: "boolean", default: false, help: "small workloads (about a minute)" },
    backend: { type: "string", default: "auto", help: "the engine's backend" },
    model: { type: "string", help: "a model folder or GGUF file instead of a random model" },
    shape: { type: "string", help: "the random model's shape (scripts/bench/model.ts)" },
    weights: { type: "string", help: "the random model's weight format (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)" },
    out: { type: "string", default: join(root, "bench", "results.json"), help: "the JSON written" },
    markdown: {
      type: "string",
      default: join(root, "BENCHMARKS.md"),
      help: "the Markdown file whose section is replaced",
    },
  },
);
const quick = values.quick === true;
const choice = values.backend as BackendChoice;
if (!BACKEND_CHOICES.includes(choice))
  throw new Error(`--backend must be one of ${BACKEND_CHOICES.join(", ")}, got ${choice}`);
const shapeName = values.shape ?? (quick ? "quick" : "default");
/** Workload sizes per mode. */
const P = quick
  ? {
      prompt: 4,
      zipfPrompt: 4,
      decodeSteps: 6,
      rounds: 2,
      b1Steps: 16,
      coldLoads: 10,
      ttftRuns: 5,
      zipfRank: 4,
      zipfSeconds: 5,
      zipfTokens: 8,
    }
  : {
      prompt: 4,
      zipfPrompt: 8,
      decodeSteps: 8,
      rounds: 2,
      b1Steps: 16,
      coldLoads: 20,
      ttftRuns: 5,
      zipfRank: 8,
      zipfSeconds: 30,
      zipfTokens: 16,
    };
const SLOTS = 32;
const MAX_RANK = 16;
const BLOCK = 16;
const CLIENTS = 64;
/** Prompt tokens of the decode runs (only decode is timed; on a CPU a prefilled token costs a decoded one). */
const PROMPT = P.prompt;

const began = performance.now();
const log = (line: string): void =>
  console.error(`[bench ${((performance.now() - began) / 1000).toFixed(1)}s] ${line}`);

const model = await benchModel(root, shapeName, values.model, log, values.weights as WeightDType | undefined);
const config = model.weights.config;
log(
  `model ${model.name}: ${config.nLayers} layers, dim ${config.dim}, hidden ${config.hiddenDim}, heads ${config.nHeads}/${config.nKvHeads}, vocab ${config.vocabSize}`,
);
const numBlocks =
  Math.max(
    CLIENTS * Math.ceil((Math.max(P.zipfPrompt + P.zipfTokens, 16 + 1) + 1) / BLOCK),
    32 * Math.ceil((PROMPT + P.decodeSteps + 2) / BLOCK),
  ) + 16;
const backend = await createBackend(choice, model.weights, {
  numBlocks,
  blockSize: BLOCK,
  adapterSlots: SLOTS,
  maxRank: MAX_RANK,
});
log(`backend ${backend.kind}: ${backend.device}`);
const storeDir = join(root, ".cache", "bench", "store", model.name);
await mkdir(storeDir, { recursive: true });
// The adapters exist in the disk tier before the engine opens it: registered, none in memory yet.
const r16 = ensureAdapterSet(storeDir, config, { label: "r16-all", count: 32, rank: MAX_RANK, seed: 1000 }, log);
const zipfIds = ensureAdapterSet(
  storeDir,
  config,
  { label: `zipf-r${P.zipfRank}-qv`, count: 1000, rank: P.zipfRank, targets: ["q", "v"], seed: 5000 },
  log,
);
// Host tier: 5% of what the backend holds (an operator's choice; it bounds the memory 1,000 adapters cost).
const hostBudgetBytes = Math.max(2 ** 20, Math.round(0.05 * backend.memoryBytes));
const engine = await Engine.create({
  backend,
  tokenizer: model.tokenizer,
  modelName: model.name,
  qkBasis: model.qkBasis,
  adapterDir: storeDir,
  hostBudgetBytes,
  scheduler: { maxBatchTokens: 512, maxRunning: CLIENTS },
});
engine.start();
const discreteGpu = backend.kind === "webgpu" && !/llvmpipe|lavapipe|swiftshader/i.test(backend.device);
const memory = (): { bytes: number; heapTotal: number; arrayBuffers: number } => {
  const m = residentMemory();
  return {
    bytes: m.rss + (discreteGpu ? backend.memoryBytes : 0),
    heapTotal: m.heapTotal,
    arrayBuffers: m.arrayBuffers,
  };
};

try {
  const copy = await copyBandwidth(backend, quick);
  log(`copy ${copy.gbps.toFixed(2)} GB/s (${copy.method})`);

  const overheadMs = await engineOverheadMs(model, CLIENTS, 50);
  log(`engine overhead ${overheadMs.toFixed(2)} ms/step at batch ${CLIENTS} (null backend)`);
  const vocab = config.vocabSize;
  const b1 = await decodeThroughput(engine, [null], prompts(1, PROMPT, vocab, 1), P.b1Steps);
  log(`base b1: ${b1.tokensPerSecond.toFixed(1)} tok/s (${b1.stepMs.toFixed(1)} ms/step)`);
  // Batch 32, base / one adapter / 32 adapters, interleaved in rounds (the cores are shared): best of each.
  const batch = prompts(32, PROMPT, vocab, 2);
  const best = {
    base: { tokensPerSecond: 0, stepMs: 0 },
    same: { tokensPerSecond: 0, stepMs: 0 },
    hetero: { tokensPerSecond: 0, stepMs: 0 },
  };
  let memoryBase = { bytes: 0, heapTotal: 0, arrayBuffers: 0 };
  for (let round = 0; round < P.rounds; round++) {
    const base = await decodeThroughput(engine, Array(32).fill(null), batch, P.decodeSteps);
    if (round === 0) memoryBase = memory(); // warmed up on the base model, no adapter touched yet
    await engine.adapters.load(r16[0]);
    const same = await decodeThroughput(engine, Array(32).fill(r16[0]), batch, P.decodeSteps);
    for (const id of r16) await engine.adapters.load(id);
    const hetero = await decodeThroughput(engine, r16, batch, P.decodeSteps);
    log(
      `b32 round ${round + 1}: base ${base.tokensPerSecond.toFixed(1)}, same adapter ${same.tokensPerSecond.toFixed(1)}, 32 adapters ${hetero.tokensPerSecond.toFixed(1)} tok/s`,
    );
    for (const [k, r] of [
      ["base", base],
      ["same", same],
      ["hetero", hetero],
    ] as const)
      if (r.tokensPerSecond > best[k].tokensPerSecond) best[k] = r;
  }
  const { base: base32, same: same32, hetero: hetero32 } = best;

  const cold = await coldLoads(engine, r16.slice(0, P.coldLoads));
  const parts: { read: number; decode: number; bytes: number }[] = [];
  for (const id of r16.slice(0, P.coldLoads)) {
    await engine.adapters.readBytes(id); // the first read of an id also checks its sha256; time the plain read
    const t0 = performance.now();
    const bytes = (await engine.adapters.readBytes(id))!;
    const t1 = performance.now();
    decodeAdapter(bytes, id);
    parts.push({ read: t1 - t0, decode: performance.now() - t1, bytes: bytes.length });
  }
  log(`cold load p50 ${percentile(cold, 50).toFixed(1)} ms, p99 ${percentile(cold, 99).toFixed(1)} ms`);
  const ttftPrompt = prompts(1, 16, vocab, 3)[0];
  const warm: number[] = [];
  const coldTtft: number[] = [];
  for (const id of r16.slice(0, P.ttftRuns)) {
    warm.push(...(await timeToFirstToken(engine, [id], ttftPrompt, true)));
    coldTtft.push(...(await timeToFirstToken(engine, [id], ttftPrompt, false)));
  }
  log(`ttft warm ${percentile(warm, 50).toFixed(1)} ms, cold ${percentile(coldTtft, 50).toFixed(1)} ms`);

  const zipf = await zipfLoad(engine, zipfIds, {
    clients: CLIENTS,
    durationMs: P.zipfSeconds * 1000,
    maxTokens: P.zipfTokens,
    promptLength: P.zipfPrompt,
    vocab,
  });
  log(
    `zipf: ${zipf.tokensPerSecond.toFixed(1)} tok/s, p99 ${zipf.p99Ms.toFixed(0)} ms over ${zipf.requests} requests, ${zipf.distinctAdapters} adapters`,
  );
  const memory1000 = memory();
  const stats = engine.stats();

  const matrixParams =
    config.nLayers *
      (config.dim * (config.dim + 2 * config.nKvHeads * config.headDim) +
        config.dim * config.dim +
        3 * config.dim * config.hiddenDim) +
    config.vocabSize * config.dim;
  const weightBytes = 4 * matrixParams;
  const stepBytes = decodeStepBytes(model.weights); // in the file's precision (f16 reads half of f32's bytes)
  const slotAdapterBytes = parts[0].bytes;
  const results: BenchResults = {
    model: model.name,
    backend: backend.kind,
    device: backend.device,
    copy_gbps: copy.gbps,
    decode_tps_base_b1: b1.tokensPerSecond,
    decode_tps_base_b32: base32.tokensPerSecond,
    decode_tps_same_b32: same32.tokensPerSecond,
    decode_tps_hetero_b32: hetero32.tokensPerSecond,
    hetero_over_base: hetero32.tokensPerSecond / base32.tokensPerSecond,
    bandwidth_util_b1: (stepBytes * b1.tokensPerSecond) / (copy.gbps * 1e9),
    adapter_cold_load_ms_p50: percentile(cold, 50),
    adapter_cold_load_ms_p99: percentile(cold, 99),
    ttft_ms_p50_warm: percentile(warm, 50),
    ttft_ms_p50_cold: percentile(coldTtft, 50),
    zipf_tps: zipf.tokensPerSecond,
    zipf_p99_ms: zipf.p99Ms,
    memory_bytes_1000_adapters: memory1000.bytes,
    memory_bytes_base: memoryBase.bytes,
  };
  // What the slots can hold: a full-rank, all-target adapter each (the base figure has them empty).
  const slotBytes = SLOTS * slotAdapterBytes;
  const memoryGoal = 1.1 * (memoryBase.bytes + slotBytes);
  const goals: Goals = {
    hetero_over_base: { text: ">= 0.8 (vLLM users report 0.5)", met: results.hetero_over_base >= 0.8 },
    bandwidth_util_b1: { text: ">= 0.7", met: results.bandwidth_util_b1 >= 0.7 },
    adapter_cold_load_ms_p99: { text: "< 100 ms", met: results.adapter_cold_load_ms_p99 < 100 },
    decode_tps_base_b32: { text: "product: > 2,000 tok/s (1B class on a GPU)", met: null },
    zipf_tps: { text: "product: > 2,000 tok/s (1B class on a GPU)", met: null },
    memory_bytes_1000_adapters: {
      text: `<= 1.1 x (base + ${SLOTS} slots) = ${(memoryGoal / 2 ** 20).toFixed(0)} MiB; 1,000 merged copies: ${((1000 * weightBytes) / 2 ** 30).toFixed(0)} GiB`,
      met: memory1000.bytes <= memoryGoal,
    },
  };
  const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
  const gflops = (tps: number): string => ((2 * matrixParams * tps) / 1e9).toFixed(2);
  const notes = [
    `run: ${new Date().toISOString().slice(0, 16)}Z, ${quick ? "--quick" : "full"}, ${((performance.now() - began) / 1000).toFixed(0)} s wall; ${backend.kind} on ${backend.device}; Node ${process.version}.`,
    `model: ${config.nLayers} layers, dim ${config.dim}, hidden ${config.hiddenDim}, ${config.nHeads}/${config.nKvHeads} heads, vocab ${config.vocabSize}: ${(matrixParams / 1e6).toFixed(1)} M matrix parameters, ${(stepBytes / 2 ** 20).toFixed(0)} MiB of weights (in the file's precision) read per decode step.`,
    `engine: ${SLOTS} slots of rank ${MAX_RANK}, KV ${numBlocks} blocks of ${BLOCK}, budget 512 tokens/step, up to ${CLIENTS} sequences; host tier budget ${(hostBudgetBytes / 2 ** 20).toFixed(1)} MiB (5% of the backend's memory).`,
    `copy: ${copy.method}.`,
    `engine overhead: ${overheadMs.toFixed(2)} ms per step for ${CLIENTS} decoding sequences (planning, row assembly, sampling bookkeeping, detokenization, streaming), measured on a backend that does no arithmetic.`,
    `decode: best of ${P.rounds} interleaved rounds of ${P.decodeSteps} steps at batch 32, ${P.b1Steps} steps at batch 1. Step: b1 ${b1.stepMs.toFixed(1)} ms (${gflops(b1.tokensPerSecond)} GFLOP/s, weights read at ${((stepBytes * b1.tokensPerSecond) / 1e9).toFixed(2)} GB/s), b32 base ${base32.stepMs.toFixed(1)} ms (${gflops(base32.tokensPerSecond)} GFLOP/s), same adapter ${same32.stepMs.toFixed(1)} ms, 32 adapters ${hetero32.stepMs.toFixed(1)} ms; b32/b1 throughput ${(base32.tokensPerSecond / b1.tokensPerSecond).toFixed(1)}x.`,
    `LoRA traffic: a step of 32 rows on 32 distinct rank-16 all-target adapters reads 32 x ${(slotAdapterBytes / 2 ** 20).toFixed(1)} MiB of A/B besides the ${(weightBytes / 2 ** 20).toFixed(0)} MiB of weights (${(((32 * slotAdapterBytes) / weightBytes) * 100).toFixed(0)}%): a memory-bound step can reach at most hetero_over_base = ${(weightBytes / (weightBytes + 32 * slotAdapterBytes)).toFixed(2)}; the FLOPs add ${((100 * (slotAdapterBytes / 4)) / matrixParams).toFixed(1)}% per row, so a compute-bound step can reach ${(matrixParams / (matrixParams + slotAdapterBytes / 4)).toFixed(2)}.`,
    `cold load (rank 16, all 7 targets, ${(slotAdapterBytes / 2 ** 20).toFixed(1)} MiB canonical): read p50 ${percentile(
      parts.map((p) => p.read),
      50,
    ).toFixed(1)} ms, decode + sha256 check p50 ${percentile(
      parts.map((p) => p.decode),
      50,
    ).toFixed(1)} ms, the rest is the slot upload and scheduling; ${cold.length} loads.`,
    `ttft: prompt 16 tokens, single request on an idle engine, ${P.ttftRuns} runs each.`,
    `zipf: 1,000 adapters rank ${P.zipfRank} (q, v), ${CLIENTS} closed-loop clients, ${P.zipfSeconds} s, prompt ${P.zipfPrompt}, ${P.zipfTokens} tokens each: ${zipf.requests} requests over ${zipf.distinctAdapters} adapters, latency p50 ${zipf.p50Ms.toFixed(0)} ms, mean queue ${zipf.meanQueueMs.toFixed(0)} ms, ${zipf.preemptions} preemptions.`,
    `memory: base ${mib(memoryBase.bytes)} MiB after the first batch-32 base run (backbone, KV pool, engine, runtime; the backend holds ${mib(backend.memoryBytes)} MiB), after the Zipf run ${mib(memory1000.bytes)} MiB with ${stats.tiers.disk.adapters} adapters registered (${mib(stats.tiers.disk.bytes)} MiB on disk): host tier ${stats.tiers.host.adapters} adapters / ${(stats.tiers.host.bytes / 2 ** 20).toFixed(1)} MiB, slots ${stats.tiers.gpu.adapters} adapters; of the growth, V8 heap (committed) ${mib(memory1000.heapTotal - memoryBase.heapTotal)} MiB, live array buffers ${mib(memory1000.arrayBuffers - memoryBase.arrayBuffers)} MiB, the rest (allocator and driver pages not returned to the system) ${mib(memory1000.bytes - memoryBase.bytes - (memory1000.heapTotal - memoryBase.heapTotal) - (memory1000.arrayBuffers - memoryBase.arrayBuffers))} MiB.`,
  ];
  writeResults(values.out!, results);
  writeMarkdown(
    values.markdown!,
    `${quick ? "quick" : shapeName}${values.weights ? `-${values.weights}` : ""}-${backend.kind}`,
    `${quick ? "Quick" : "Full"} run, ${shapeName === "default" || quick ? "" : `shape ${shapeName}, `}${values.weights ? `${values.weights} weights, ` : ""}${backend.kind} (${backend.device})`,
    results,
    goals,
    notes,
  );
  console.log(
    JSON.stringify(
      Object.fromEntries(Object.entries(results).map(([k, v]) => [k, typeof v === "number" ? round(v) : v])),
      null,
      2,
    ),
  );
  log(`wrote ${values.out} and ${values.markdown}`);
} finally {
  await engine.close();
  await backend.close();
}
