// Parity of the webgpu backend with the cpu reference, per weight format: the checks that scripts/gpu/parity.ts
// runs on a device and test/engine/webgpu-formats.test.ts runs in `npm test` (lavapipe). Each format gets a
// random model written as a GGUF of that type and loaded back through the engine's loader, so the device sees
// the file's blocks exactly; the cpu backend computes on the same blocks dequantized to float32. Both run the
// same tokens (a prompt, then the cpu's greedy picks), and every step's logits are compared.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Backend, SequenceStep } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import { createWebGpuBackend } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import { GgufReader } from "../../node/engine/formats/gguf-read.ts";
import { writeGgufModel } from "../../node/engine/formats/gguf-write.ts";
import { loadModel } from "../../node/engine/formats/load-model.ts";
import { randomModelInput } from "../../node/engine/formats/random-model.ts";
import type { ModelConfig } from "../../node/engine/model/config.ts";
import type { LoadedModel, WeightDType } from "../../node/engine/model/weights.ts";

/** A small LLaMA whose widths are multiples of 256, so that every format (K-quants too) stores every matrix. */
export const PARITY_CONFIG: ModelConfig = {
  dim: 256,
  hiddenDim: 512,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 64,
  vocabSize: 768,
  maxSeqLen: 128,
  normEps: 1e-5,
  ropeTheta: 10000,
};

/**
 * The stated tolerance: max |gpu - cpu| over a step's logits, divided by max(1, max |cpu logit|). Both backends
 * compute on the same dequantized values in float32; only the order of the sums differs.
 */
export const PARITY_TOL = 1e-4;

export const PARITY_OPTIONS = { numBlocks: 16, blockSize: 16, adapterSlots: 0, maxRank: 0 };

export interface FormatParity {
  dtype: WeightDType;
  /** Tensor bytes of the GGUF file (its size less the header) and what the webgpu backend holds for weights. */
  fileTensorBytes: number;
  deviceWeightBytes: number;
  steps: number;
  /** Worst relative logit difference over all steps, and the tolerance it is held to. */
  maxRelDiff: number;
  tol: number;
  /** Steps whose greedy pick agrees between the two backends. */
  greedyAgree: number;
  ok: boolean;
}

/** max |a - b| / max(1, max |b|), the relative difference the parity tolerances are stated in; Infinity when a
 * holds a non-finite value. The tests compare backends with it too. */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`logits of ${a.length} and ${b.length} values`);
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Writes the parity model as a GGUF of `dtype` in `dir` and loads it back; also returns the file's tensor bytes. */
export async function parityModel(dir: string, dtype: WeightDType): Promise<{ model: LoadedModel; bytes: number }> {
  const file = join(dir, `parity-${dtype}.gguf`);
  // Larger weights than the default 0.02 give logits of a few units, so that a wrong block shows.
  const input = randomModelInput(PARITY_CONFIG, 7, { scale: 0.08, vectorScale: 0.2, tiedClassifier: false }, dtype);
  writeGgufModel(file, input, { dtype });
  const model = await loadModel(file);
  const reader = GgufReader.open(file);
  let bytes = 0;
  for (const info of reader.tensors.values()) bytes += info.byteLength;
  reader.close();
  return { model, bytes };
}

/** Runs `steps` steps (a 5-token prompt, then decode) on both backends along the cpu's greedy tokens. */
export async function compareBackends(
  gpu: Backend,
  cpu: Backend,
  steps: number,
): Promise<{ maxRelDiff: number; greedyAgree: number }> {
  const blockTable = [0, 1, 2, 3];
  let step: SequenceStep = { tokens: [1, 17, 300, 5, 42], position: 0, blockTable, slot: -1 };
  let maxRelDiff = 0;
  let greedyAgree = 0;
  for (let i = 0; i < steps; i++) {
    const [g, c] = [await gpu.forward([step]), await cpu.forward([step])];
    maxRelDiff = Math.max(maxRelDiff, relDiff(g, c));
    const next = argmax(c);
    if (argmax(g) === next) greedyAgree++;
    step = { tokens: [next], position: step.position + step.tokens.length, blockTable, slot: -1 };
  }
  return { maxRelDiff, greedyAgree };
}

/** One format end to end: GGUF written, loaded, both backends compared. */
export async function formatParity(dtype: WeightDType, steps = 8): Promise<FormatParity> {
  const dir = mkdtempSync(join(tmpdir(), "openlora-parity-"));
  let gpu: Backend | null = null;
  try {
    const { model, bytes } = await parityModel(dir, dtype);
    gpu = await createWebGpuBackend(model.weights, PARITY_OPTIONS);
    const cpu = createCpuBackend(model.weights, PARITY_OPTIONS);
    const { maxRelDiff, greedyAgree } = await compareBackends(gpu, cpu, steps);
    const deviceWeightBytes = (gpu as Backend & { weightBytes?: number }).weightBytes ?? NaN;
    return {
      dtype,
      fileTensorBytes: bytes,
      deviceWeightBytes,
      steps,
      maxRelDiff,
      tol: PARITY_TOL,
      greedyAgree,
      ok: maxRelDiff <= PARITY_TOL,
    };
  } finally {
    await gpu?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
