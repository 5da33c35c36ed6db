// The benchmark's workloads, all through the serving engine (scheduler, adapter tiers, SGMV batching).
import type { Engine } from "../../node/engine/runtime/engine.ts";
import type { Usage } from "../../node/engine/runtime/types.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";
import { percentile } from "./stats.ts";

/** Random prompts of `length` tokens (BOS first) over the vocabulary, distinct per index. */
export function prompts(count: number, length: number, vocab: number, seed: number): number[][] {
  const rng = createRng(seed);
  return Array.from({ length: count }, () => [
    1,
    ...Array.from({ length: length - 1 }, () => 3 + Math.floor(rng() * (vocab - 3))),
  ]);
}

export interface DecodeResult {
  tokensPerSecond: number;
  /** Mean wall time of one decode step (all sequences advance by one token). */
  stepMs: number;
}

/**
 * Steady-state decode throughput of `adapterIds.length` sequences running together: from the moment the last
 * one has its first token (every prompt prefilled) to the last token, counting the tokens in between.
 */
export async function decodeThroughput(
  engine: Engine,
  adapterIds: (string | null)[],
  promptIds: number[][],
  decodeSteps: number,
): Promise<DecodeResult> {
  const runs = adapterIds.map(async (adapterId, i) => {
    const times: number[] = [];
    for await (const event of engine.submit({
      adapterId,
      tokenIds: promptIds[i],
      maxTokens: decodeSteps + 1,
      temperature: 0,
      ignoreEos: true,
    })) {
      if (event.type === "token") times.push(performance.now());
    }
    return times;
  });
  const times = await Promise.all(runs);
  const start = Math.max(...times.map((t) => t[0]));
  const end = Math.max(...times.map((t) => t[t.length - 1]));
  const tokens = times.reduce((n, t) => n + t.filter((x) => x > start).length, 0);
  return { tokensPerSecond: (1000 * tokens) / (end - start), stepMs: (end - start) / decodeSteps };
}

/** Disk to ready-in-a-slot, per adapter: each is first dropped from the slots and the host tier. */
export async function coldLoads(engine: Engine, ids: string[]): Promise<number[]> {
  const ms: number[] = [];
  for (const id of ids) {
    await engine.adapters.unload(id);
    const started = performance.now();
    await engine.adapters.load(id);
    ms.push(performance.now() - started);
  }
  return ms;
}

/** Time to first token of single requests on an idle engine, with the adapter resident (warm) or on disk only (cold). */
export async function timeToFirstToken(
  engine: Engine,
  ids: string[],
  promptIds: number[],
  warm: boolean,
): Promise<number[]> {
  const ms: number[] = [];
  for (const id of ids) {
    if (warm) await engine.adapters.load(id);
    else await engine.adapters.unload(id);
    const { usage } = await engine.submit({
      adapterId: id,
      tokenIds: promptIds,
      maxTokens: 1,
      temperature: 0,
      ignoreEos: true,
    }).result;
    ms.push(usage.timings.ttftMs);
  }
  return ms;
}

export interface ZipfResult {
  tokensPerSecond: number;
  p99Ms: number;
  p50Ms: number;
  requests: number;
  distinctAdapters: number;
  preemptions: number;
  meanQueueMs: number;
}

/**
 * Closed loop: `clients` clients each send a request, wait for its end, and send the next, for `durationMs`;
 * each request's adapter is drawn from Zipf(s) over `ids` (rank 1 the most popular).
 */
export async function zipfLoad(
  engine: Engine,
  ids: string[],
  options: {
    clients: number;
    durationMs: number;
    maxTokens: number;
    promptLength: number;
    vocab: number;
    s?: number;
    seed?: number;
  },
): Promise<ZipfResult> {
  const rng = createRng(options.seed ?? 11);
  const weights = ids.map((_, k) => 1 / Math.pow(k + 1, options.s ?? 1));
  const total = weights.reduce((a, b) => a + b, 0);
  const cdf: number[] = [];
  weights.reduce((acc, w) => {
    cdf.push((acc + w) / total);
    return acc + w;
  }, 0);
  const draw = (): string => {
    const u = rng();
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return ids[lo];
  };
  const usages: Usage[] = [];
  const used = new Set<string>();
  const started = performance.now();
  const client = async (c: number): Promise<void> => {
    let n = 0;
    while (performance.now() - started < options.durationMs) {
      const adapterId = draw();
      used.add(adapterId);
      const [tokenIds] = prompts(1, options.promptLength, options.vocab, c * 100_003 + n++);
      const { usage } = await engine.submit({
        adapterId,
        tokenIds,
        maxTokens: options.maxTokens,
        temperature: 0,
        ignoreEos: true,
      }).result;
      usages.push(usage);
    }
  };
  const before = engine.stats().preemptions;
  await Promise.all(Array.from({ length: options.clients }, (_, c) => client(c)));
  const elapsed = performance.now() - started;
  const latencies = usages.map((u) => u.timings.totalMs);
  return {
    tokensPerSecond: (1000 * usages.reduce((n, u) => n + u.completionTokens, 0)) / elapsed,
    p99Ms: percentile(latencies, 99),
    p50Ms: percentile(latencies, 50),
    requests: usages.length,
    distinctAdapters: used.size,
    preemptions: engine.stats().preemptions - before,
    meanQueueMs: usages.reduce((n, u) => n + u.timings.queueMs, 0) / Math.max(1, usages.length),
  };
}
