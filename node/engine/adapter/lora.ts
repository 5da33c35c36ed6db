import type { ArchitectureFamily, LinearTarget } from "../model/config.ts";

/**
 * One LoRA pair for one linear layer: y += B (A x). The scale (lora_alpha / r, or / sqrt(r) with rsLoRA) is
 * already folded into B, and for q/k the rows of B are in the canonical basis (model/rope-basis.ts).
 */
export interface LoraPair {
  rank: number;
  a: Float32Array; // [rank, inDim] row-major
  b: Float32Array; // [outDim, rank] row-major, scaled
}

/** A LoRA adapter in the engine's canonical form, ready for any backend. */
export interface LoraAdapter {
  /** "0x" + sha256 of the canonical encoding (adapter/canonical.ts): the id the chain registers. */
  id: string;
  /**
   * The architecture it is for (its canonical header names it; backends refuse another); absent means "llama"
   * (adapters built in memory for plain LLaMA models).
   */
  family?: ArchitectureFamily;
  /** The base model it was trained on (PEFT base_model_name_or_path), "" when the config gave none. */
  baseModel: string;
  /** The largest rank over all pairs. */
  rank: number;
  /** lora_alpha of the config (informative: the scale is already in B). */
  alpha: number;
  useRslora: boolean;
  /** The targets present in at least one layer, in LINEAR_TARGETS order. */
  targets: LinearTarget[];
  /** layers[i][target] is the pair for that layer and target, absent where the adapter leaves it alone. */
  layers: Partial<Record<LinearTarget, LoraPair>>[];
}

/** Parameters (A and B elements) of an adapter. */
export function adapterParameterCount(adapter: LoraAdapter): number {
  let count = 0;
  for (const layer of adapter.layers) for (const pair of Object.values(layer)) count += pair.a.length + pair.b.length;
  return count;
}
