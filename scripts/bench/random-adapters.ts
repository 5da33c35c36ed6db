// Random LoRA adapters built directly in the canonical form (no PEFT folder round trip): what the benchmarks
// and the thousand-adapter tests register by the hundred. writeRandomPeftAdapter is the PEFT-folder twin.
import { withId } from "../../node/engine/adapter/canonical.ts";
import type { LoraAdapter, LoraPair } from "../../node/engine/adapter/lora.ts";
import {
  LINEAR_TARGETS,
  projectionShape,
  type LinearTarget,
  type ModelConfig,
} from "../../node/engine/model/config.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";

export interface RandomLoraOptions {
  rank: number;
  seed: number;
  targets?: readonly LinearTarget[];
  /** Magnitude of B's entries (A is U(-1, 1) / sqrt(in)); larger moves the output further from the base. */
  bScale?: number;
  baseModel?: string;
}

/** A random adapter for a model shape, with its id and canonical bytes. */
export function randomLora(
  config: ModelConfig,
  options: RandomLoraOptions,
): { adapter: LoraAdapter; encoded: Uint8Array } {
  const rng = createRng(options.seed);
  const targets = LINEAR_TARGETS.filter((t) => (options.targets ?? LINEAR_TARGETS).includes(t));
  const bScale = options.bScale ?? 0.05;
  const uniform = (n: number, scale: number): Float32Array => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (2 * rng() - 1) * scale;
    return out;
  };
  const layers = Array.from({ length: config.nLayers }, () => {
    const layer: Partial<Record<LinearTarget, LoraPair>> = {};
    for (const target of targets) {
      const { inDim, outDim } = projectionShape(config, target);
      layer[target] = {
        rank: options.rank,
        a: uniform(options.rank * inDim, 1 / Math.sqrt(inDim)),
        b: uniform(outDim * options.rank, bScale),
      };
    }
    return layer;
  });
  return withId({
    baseModel: options.baseModel ?? "",
    rank: options.rank,
    alpha: options.rank,
    useRslora: false,
    targets: [...targets],
    layers,
  });
}
