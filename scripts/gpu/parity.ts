// `node scripts/gpu/parity.ts [--out FILE] [--formats f32,q8_0,...] [--steps N]`
// The webgpu backend against the cpu reference on the adapter this process finds (a real GPU on the device
// machine, lavapipe here): the demo model (stories260K, greedy tokens for 60 steps must be equal), then every
// weight format on a random model written as a GGUF of that type (scripts/gpu/parity-lib.ts states the
// tolerance). Prints one JSON object (also written to --out); exit 0 when all pass, 3 when one differs.
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import { createWebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { loadModel } from "../../node/engine/formats/load-model.ts";
import { ALL_WEIGHT_DTYPES } from "../../node/engine/formats/weight-codec.ts";
import type { WeightDType } from "../../node/engine/model/weights.ts";
import { argmax, formatParity, PARITY_TOL, relDiff, type FormatParity } from "./parity-lib.ts";

const root = resolve(import.meta.dirname, "../..");
const { values } = parseArgs({
  options: {
    out: { type: "string" },
    formats: { type: "string", default: ALL_WEIGHT_DTYPES.join(",") },
    steps: { type: "string", default: "8" },
  },
});
const formats = values.formats.split(",").filter(Boolean) as WeightDType[];
for (const f of formats) {
  if (!ALL_WEIGHT_DTYPES.includes(f))
    throw new Error(`--formats: unknown format ${f} (known: ${ALL_WEIGHT_DTYPES.join(", ")})`);
}
const steps = Number(values.steps);

/** stories260K f32: greedy tokens of "Once upon a time" for 60 steps on both backends, and the worst logit gap. */
async function demoParity(): Promise<{
  tokens: number;
  firstDifference: number | null;
  maxRelDiff: number;
  ok: boolean;
  device: string;
}> {
  const model = await loadModel(join(root, "models", "stories260K"));
  const options = { numBlocks: 8, blockSize: 16, adapterSlots: 0, maxRank: 0 };
  const gpu = await createWebGpuBackend(model.weights, options);
  const cpu = createCpuBackend(model.weights, options);
  try {
    const prompt = model.tokenizer.encode("Once upon a time", { bos: true } as never) as unknown as number[];
    const blockTable = [0, 1, 2, 3, 4, 5];
    let step = { tokens: prompt, position: 0, blockTable, slot: -1 };
    let firstDifference: number | null = null;
    let maxRelDiff = 0;
    const tokens = 60;
    for (let i = 0; i < tokens; i++) {
      const [g, c] = [await gpu.forward([step]), await cpu.forward([step])];
      maxRelDiff = Math.max(maxRelDiff, relDiff(g, c));
      const next = argmax(c);
      if (firstDifference === null && argmax(g) !== next) firstDifference = i;
      step = { tokens: [next], position: step.position + step.tokens.length, blockTable, slot: -1 };
    }
    return {
      tokens,
      firstDifference,
      maxRelDiff,
      ok: firstDifference === null && maxRelDiff <= PARITY_TOL,
      device: gpu.device,
    };
  } finally {
    await gpu.close();
  }
}

const started = performance.now();
const demo = await demoParity();
console.error(
  `parity: stories260K f32 on ${demo.device}: ${demo.ok ? "ok" : "DIFFERS"} (max rel ${demo.maxRelDiff.toExponential(2)})`,
);
const results: FormatParity[] = [];
for (const dtype of formats) {
  const r = await formatParity(dtype, steps);
  results.push(r);
  console.error(
    `parity: ${dtype.padEnd(5)} ${r.ok ? "ok" : "DIFFERS"}: max rel ${r.maxRelDiff.toExponential(2)} (tol ${r.tol}), greedy ${r.greedyAgree}/${r.steps}, weights ${r.deviceWeightBytes} B on the device for ${r.fileTensorBytes} B in the file`,
  );
}
const ok = demo.ok && results.every((r) => r.ok);
const report = { ok, device: demo.device, seconds: (performance.now() - started) / 1000, demo, formats: results };
const text = JSON.stringify(report, null, 2);
if (values.out) writeFileSync(values.out, text + "\n");
console.log(text);
process.exit(ok ? 0 : 3);
