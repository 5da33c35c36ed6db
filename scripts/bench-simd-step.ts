// `bash scripts/run.sh node scripts/bench-simd-step.ts [--dtypes f32,f16,q8_0,q4_0] [--threads N] [--shape default]`
// One decode step of the simd backend alone (no engine) at batch 1, 8 and 32 on a random model of a bench shape,
// per weight format, against the copy bandwidth measured in the same run: the figures behind the technology
// choice in BENCHMARKS.md. Weight bytes per step are every layer matrix and the classifier in their precision.
import { availableParallelism } from "node:os";
import type { SequenceStep } from "../node/engine/backend/backend.ts";
import { createSimdBackend } from "../node/engine/backend/simd/simd-backend.ts";
import { randomModel } from "../node/engine/formats/random-model.ts";
import { WEIGHT_DTYPES } from "../node/engine/formats/weight-codec.ts";
import type { WeightDType } from "../node/engine/model/weights.ts";
import { copyBandwidth } from "./bench/copy.ts";
import { decodeStepBytes } from "./bench/step-bytes.ts";
import { SHAPES, shapeConfig } from "./bench/model.ts";
import { scriptArgs } from "./script-args.ts";

const values = scriptArgs(
  "One decode step of the simd backend at batch 1, 8 and 32, per weight format.",
  "node scripts/bench-simd-step.ts [--dtypes f32,f16,...] [--threads N] [--shape NAME]",
  {
    dtypes: { type: "string", default: "f32,f16,q8_0,q4_0", help: "weight formats, comma-separated" },
    threads: { type: "string", help: "worker threads (default the core count)" },
    shape: { type: "string", default: "default", help: "the random model's shape (scripts/bench/model.ts)" },
  },
);
const dtypes = values.dtypes!.split(",") as WeightDType[];
for (const d of dtypes) if (!WEIGHT_DTYPES.includes(d)) throw new Error(`unknown dtype ${d}`);
const threads = values.threads === undefined ? availableParallelism() : Number(values.threads);
const config = shapeConfig(SHAPES[values.shape!]);
const BATCHES = [1, 8, 32];
const PROMPT = 16;
const REPEATS = 5;

for (const dtype of dtypes) {
  const { weights } = randomModel(config, 0, {}, dtype);
  const blocksPerSeq = Math.ceil((PROMPT + REPEATS + 2) / 16);
  const backend = await createSimdBackend(weights, {
    numBlocks: 32 * blocksPerSeq,
    blockSize: 16,
    adapterSlots: 0,
    maxRank: 0,
    threads,
  });
  const stepBytes = decodeStepBytes(weights);
  const row: string[] = [];
  for (const batch of BATCHES) {
    const tables = Array.from({ length: batch }, (_, s) =>
      Array.from({ length: blocksPerSeq }, (_, b) => s * blocksPerSeq + b),
    );
    await backend.forward(
      tables.map((blockTable, s) => ({
        tokens: Array.from({ length: PROMPT }, (_, i) => 3 + ((s * 31 + i * 7) % 1000)),
        position: 0,
        blockTable,
        slot: -1,
      })),
    );
    const times: number[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const steps: SequenceStep[] = tables.map((blockTable) => ({
        tokens: [5 + r],
        position: PROMPT + r,
        blockTable,
        slot: -1,
      }));
      const started = performance.now();
      await backend.forward(steps);
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    const ms = times[Math.floor(REPEATS / 2)];
    row.push(
      `b${batch} ${ms.toFixed(1)} ms (${(stepBytes / ms / 1e6).toFixed(1)} GB/s, ` +
        `${((batch * 1000) / ms).toFixed(0)} tok/s)`,
    );
  }
  const copy = await copyBandwidth(backend, false);
  console.log(
    `${dtype}: ${(stepBytes / 1e6).toFixed(0)} MB/step; ${row.join("; ")}; ` +
      `copy ${copy.gbps.toFixed(1)} GB/s, ${threads} threads`,
  );
  await backend.close();
}
