// The benchmark's backbone: a random-weight model of a named shape, generated once (as `openlora model new`
// does) and cached under .cache/bench/, or any model file the user names.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeGgufModel } from "../../node/engine/formats/gguf-write.ts";
import { loadModel } from "../../node/engine/formats/load-model.ts";
import { randomModelInput } from "../../node/engine/formats/random-model.ts";
import type { ModelConfig } from "../../node/engine/model/config.ts";
import { ALL_WEIGHT_DTYPES } from "../../node/engine/formats/weight-codec.ts";
import type { LoadedModel, WeightDType } from "../../node/engine/model/weights.ts";

export interface Shape {
  layers: number;
  dim: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  context: number;
}

/** The shapes the benchmark knows by name. */
export const SHAPES: Record<string, Shape> = {
  /** --quick: small enough for the whole suite in well under a minute on two cores. */
  quick: { layers: 4, dim: 256, hidden: 688, heads: 4, kvHeads: 4, vocab: 4096, context: 512 },
  /** The default: the 12-layer, dim-768 shape (GPT-2-small class). */
  default: { layers: 12, dim: 768, hidden: 2048, heads: 12, kvHeads: 12, vocab: 32000, context: 1024 },
  /** The 1B class (TinyLlama-like) for a real GPU. */
  "1b": { layers: 16, dim: 2048, hidden: 5632, heads: 32, kvHeads: 8, vocab: 32000, context: 2048 },
};

export function shapeConfig(shape: Shape): ModelConfig {
  return {
    dim: shape.dim,
    hiddenDim: shape.hidden,
    nLayers: shape.layers,
    nHeads: shape.heads,
    nKvHeads: shape.kvHeads,
    headDim: shape.dim / shape.heads,
    vocabSize: shape.vocab,
    maxSeqLen: shape.context,
    normEps: 1e-5,
    ropeTheta: 10000,
  };
}

/**
 * Loads `path`, or the cached random model of `shapeName` with its matrices stored as `dtype` (writing it first
 * when missing). The loader keeps the file's format: the webgpu and simd backends read it as stored (f16 by
 * default; a matrix whose width is not a whole number of the format's blocks is written as f16).
 */
export async function benchModel(
  root: string,
  shapeName: string,
  path: string | undefined,
  log: (line: string) => void,
  dtype: WeightDType = "f16",
): Promise<LoadedModel> {
  if (path) return loadModel(path);
  const shape = SHAPES[shapeName];
  if (!shape) throw new Error(`unknown shape "${shapeName}" (known: ${Object.keys(SHAPES).join(", ")})`);
  if (!ALL_WEIGHT_DTYPES.includes(dtype))
    throw new Error(`unknown weight format "${dtype}" (known: ${ALL_WEIGHT_DTYPES.join(", ")})`);
  const dir = join(root, ".cache", "bench");
  mkdirSync(dir, { recursive: true });
  const base = `random-${shape.layers}x${shape.dim}-h${shape.hidden}-kv${shape.kvHeads}-v${shape.vocab}`;
  const name = dtype === "f16" ? base : `${base}-${dtype}`;
  const file = join(dir, `${name}.gguf`);
  if (!existsSync(file)) {
    const started = performance.now();
    writeGgufModel(file, randomModelInput(shapeConfig(shape), 0, {}, name), { dtype });
    log(`generated ${file} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  return loadModel(file);
}
