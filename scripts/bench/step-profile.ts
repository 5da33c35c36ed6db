// bench:kernels' step breakdown: whole decode steps of the webgpu backend on a benchmark shape, each kernel's share
// of the step's device time (timestamp queries, node/engine/backend/webgpu/step-profile.ts), next to the step's
// wall time and the host's part of it (planning, recording, submitting) measured on the same steps run plainly.
import type { SequenceStep } from "../../node/engine/backend/backend.ts";
import { kernelTotals, type KernelTotal } from "../../node/engine/backend/webgpu/step-profile.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { benchModel } from "./model.ts";
import { randomLora } from "./random-adapters.ts";
import { comparePipeline, type PipelineRow } from "./step-pipeline.ts";
import { percentile } from "./stats.ts";
import { BLOCK, GREEDY, PROMPT, promptedSequences } from "./step-sequences.ts";

/** Adapter slots of the adapters case: each holds a distinct rank-16 adapter. */
const SLOTS = 8;
const RANK = 16;

export interface StepCase {
  name: string;
  batch: number;
  /** Distinct adapters over the batch's rows (0: base model only). */
  adapters: number;
  /** Median over the plain steps: wall time, and the host's part of it, ms. */
  stepMs: number;
  hostMs: number;
  stepsPerSecond: number;
  /** "timestamps" or "wall" (the adapter lacks timestamp-query: no per-kernel times). */
  source: string;
  /** Sum of the profiled step's dispatch times (median over the profiled steps), ms. */
  deviceMs: number;
  /** Per kernel and kind of site, every layer together: median ms over the profiled steps, share of deviceMs. */
  kernels: (KernelTotal & { share: number })[];
}

/**
 * Profiles decode steps at batch 1 and 32 (and 32 over distinct adapters) of `shape`: `steps` plain and profiled;
 * then the step pipeline's before/after (step-pipeline.ts) at batch 1 and 32, 2 x `steps` trials of 8 steps.
 */
export async function profileSteps(
  root: string,
  shape: string,
  steps: number,
  log: (line: string) => void,
): Promise<{ shape: string; device: string; cases: StepCase[]; pipeline: PipelineRow[] }> {
  const model = await benchModel(root, shape, undefined, log);
  const config = model.weights.config;
  const perSeq = Math.ceil((PROMPT + 2 * steps + 2) / BLOCK);
  const backend = await createWebGpuBackend(model.weights, {
    numBlocks: 32 * perSeq,
    blockSize: BLOCK,
    adapterSlots: SLOTS,
    maxRank: RANK,
  });
  try {
    for (let slot = 0; slot < SLOTS; slot++) {
      await backend.setAdapter(slot, randomLora(config, { rank: RANK, seed: 100 + slot }).adapter);
    }
    const cases: StepCase[] = [];
    for (const [batch, adapters] of [
      [1, 0],
      [32, 0],
      [32, SLOTS],
    ] as const) {
      const name = `decode b${batch}${adapters ? ` over ${adapters} adapters` : ""}`;
      const one = await profileCase(backend, name, batch, adapters, perSeq, steps);
      cases.push(one);
      log(
        `${name}: ${one.stepMs.toFixed(2)} ms a step (${one.stepsPerSecond.toFixed(1)} steps/s), host ${one.hostMs.toFixed(2)} ms, device ${one.source === "timestamps" ? `${one.deviceMs.toFixed(2)} ms profiled` : "not timed (no timestamp-query)"}`,
      );
      for (const k of one.kernels) {
        log(
          `  ${k.name.padEnd(26)} ${String(k.dispatches).padStart(4)}x ${k.ms.toFixed(3).padStart(9)} ms ${(100 * k.share).toFixed(1).padStart(5)}%`,
        );
      }
    }
    const device = backend.device;
    await backend.close();
    const pipeline = await comparePipeline(model.weights, [1, 32], 8, 2 * steps, log);
    return { shape, device, cases, pipeline };
  } finally {
    await backend.close();
  }
}

async function profileCase(
  backend: WebGpuBackend,
  name: string,
  batch: number,
  adapters: number,
  perSeq: number,
  steps: number,
): Promise<StepCase> {
  const vocab = backend.config.vocabSize;
  // Sequences ordered by slot (SGMV's contract).
  const seqs = promptedSequences(batch, vocab, perSeq, (i) => (adapters ? Math.floor((i * adapters) / batch) : -1));
  const params = seqs.map(() => GREEDY);
  const draws = new Float32Array(batch);
  let ids = await backend.sample(seqs, params, draws);
  let position = PROMPT;
  const next = (): SequenceStep[] => seqs.map((s, i) => ({ ...s, tokens: [ids[i]], position }));
  // Warm-up step (first use of the decode pipelines), then plain steps timed on the host, then profiled ones.
  ids = await backend.sample(next(), params, draws);
  position++;
  const walls: number[] = [];
  const hosts: number[] = [];
  for (let s = 0; s < steps; s++) {
    const { ids: out, profile } = await backend.profileSample(next(), params, draws, { timestamps: false });
    walls.push(profile.wallMs);
    hosts.push(profile.hostMs);
    ids = out;
    position++;
  }
  const runs: KernelTotal[][] = [];
  let source = "wall";
  for (let s = 0; s < steps; s++) {
    const { ids: out, profile } = await backend.profileSample(next(), params, draws);
    source = profile.source;
    runs.push(kernelTotals(profile.dispatches));
    ids = out;
    position++;
  }
  const kernels = (runs[0] ?? []).map((k) => {
    const ms = percentile(
      runs.map((r) => r.find((x) => x.name === k.name)?.ms ?? 0),
      50,
    );
    return { ...k, ms, share: 0 };
  });
  const deviceMs = kernels.reduce((n, k) => n + k.ms, 0);
  for (const k of kernels) k.share = deviceMs > 0 ? k.ms / deviceMs : 0;
  const stepMs = percentile(walls, 50);
  return {
    name,
    batch,
    adapters,
    stepMs,
    hostMs: percentile(hosts, 50),
    stepsPerSecond: 1000 / stepMs,
    source,
    deviceMs,
    kernels,
  };
}
