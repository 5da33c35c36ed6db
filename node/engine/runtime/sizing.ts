import { LINEAR_TARGETS, projectionShape, type ModelConfig } from "../model/config.ts";

/** Bytes one adapter slot holds: every target at the slot rank, float32. */
export function slotBytes(config: ModelConfig, maxRank: number): number {
  const perLayer = LINEAR_TARGETS.reduce((n, t) => {
    const { inDim, outDim } = projectionShape(config, t);
    return n + maxRank * (inDim + outDim);
  }, 0);
  return 4 * config.nLayers * perLayer;
}

/** Bytes of one KV block (K and V, every layer), float32. */
export function kvBlockBytes(config: ModelConfig, blockSize: number): number {
  return 2 * 4 * config.nLayers * blockSize * config.nKvHeads * config.headDim;
}

export interface CapacityPlan {
  numBlocks: number;
  adapterSlots: number;
}

/**
 * Splits the device memory left after the backbone between adapter slots and the KV pool: the slot count from
 * config when given, else `adapterShare` of what is left (at least one slot); the KV pool takes the rest.
 * Throws when the pool could not hold one full context.
 */
export function planCapacity(options: {
  config: ModelConfig;
  /** Device memory the node may use, bytes. */
  deviceBytes: number;
  /** Bytes the backbone's weights take on the device. */
  weightBytes: number;
  maxRank: number;
  blockSize: number;
  /** Fixed slot count (from config); otherwise derived. */
  adapterSlots?: number;
  /** Share of the free memory for slots when the count is derived. Default 0.1. */
  adapterShare?: number;
  /** Share kept back for activations and scratch. Default 0.05. */
  reserveShare?: number;
}): CapacityPlan {
  const { config, maxRank, blockSize } = options;
  const free = (options.deviceBytes - options.weightBytes) * (1 - (options.reserveShare ?? 0.05));
  const slot = slotBytes(config, maxRank);
  const adapterSlots = options.adapterSlots ?? Math.max(1, Math.floor((free * (options.adapterShare ?? 0.1)) / slot));
  const numBlocks = Math.floor((free - adapterSlots * slot) / kvBlockBytes(config, blockSize));
  const needed = Math.ceil(config.maxSeqLen / blockSize);
  if (numBlocks < needed) {
    throw new RangeError(
      `${(options.deviceBytes / 2 ** 30).toFixed(1)} GiB leave room for ${Math.max(0, numBlocks)} KV blocks with ${adapterSlots} adapter slots; one full context needs ${needed}`,
    );
  }
  return { numBlocks, adapterSlots };
}
