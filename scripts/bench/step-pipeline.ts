// bench:kernels' before/after of the webgpu step pipeline (node/engine/backend/webgpu/step-ahead.ts): decode steps
// per second at batch 1 and 32 on a benchmark shape, one backend recording each step when asked (pipeline off),
// one recording the next step while the device runs the current one (on), in alternating trials of one run so that
// the machine's load hits both alike.
import type { SamplingParams } from "../../node/engine/backend/backend.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import type { ModelWeights } from "../../node/engine/model/weights.ts";
import { percentile } from "./stats.ts";
import { BLOCK, GREEDY, PROMPT, promptedSequences } from "./step-sequences.ts";

export interface PipelineRow {
  batch: number;
  /** Median decode steps per second over the trials, without and with the pipeline. */
  off: number;
  on: number;
  /** on / off. */
  speedup: number;
  /** Steps the pipelined backend sent as recorded ahead, of all its decode steps. */
  recordedAhead: number;
  decodeSteps: number;
}

/** Runs `trials` alternating trials of `steps` decode steps at each batch size on both backends. */
export async function comparePipeline(
  weights: ModelWeights,
  batches: readonly number[],
  steps: number,
  trials: number,
  log: (line: string) => void,
): Promise<PipelineRow[]> {
  const perSeq = Math.ceil((PROMPT + trials * steps + 1) / BLOCK);
  const options = { numBlocks: Math.max(...batches) * perSeq, blockSize: BLOCK, adapterSlots: 0, maxRank: 0 };
  const off = await createWebGpuBackend(weights, { ...options, pipeline: false });
  const on = await createWebGpuBackend(weights, { ...options, pipeline: true });
  try {
    const rows: PipelineRow[] = [];
    for (const batch of batches) {
      const vocab = weights.config.vocabSize;
      // The same sequences on both backends.
      const state = [off, on].map(() => ({ seqs: promptedSequences(batch, vocab, perSeq), rates: [] as number[] }));
      const params = new Array<SamplingParams>(batch).fill(GREEDY);
      const draws = new Float32Array(batch);
      /** `n` decode steps on one backend, as the engine runs them (each step's tokens from the last). */
      const decode = async (backend: WebGpuBackend, s: (typeof state)[number], n: number): Promise<number> => {
        const started = performance.now();
        for (let k = 0; k < n; k++) {
          const ids = await backend.sample(s.seqs, params, draws);
          s.seqs = s.seqs.map((q, i) => ({ ...q, position: q.position + q.tokens.length, tokens: [ids[i]] }));
        }
        return (1000 * n) / (performance.now() - started);
      };
      const before = on.stepsRecordedAhead;
      for (const [b, backend] of [off, on].entries()) await decode(backend, state[b], 1); // prefill
      for (let t = 0; t < trials; t++) {
        const order = t % 2 === 0 ? [0, 1] : [1, 0];
        for (const b of order) state[b].rates.push(await decode([off, on][b], state[b], steps));
      }
      const [offRate, onRate] = state.map((s) => percentile(s.rates, 50));
      const row: PipelineRow = {
        batch,
        off: offRate,
        on: onRate,
        speedup: onRate / offRate,
        recordedAhead: on.stepsRecordedAhead - before,
        decodeSteps: trials * steps,
      };
      rows.push(row);
      log(
        `pipeline b${batch}: ${offRate.toFixed(1)} steps/s off, ${onRate.toFixed(1)} on (${row.speedup.toFixed(2)}x); ${row.recordedAhead} of ${row.decodeSteps} steps sent as recorded ahead`,
      );
    }
    return rows;
  } finally {
    await off.close();
    await on.close();
  }
}
