import { totalmem } from "node:os";
import { InvalidOptionError } from "../errors.ts";
import { LINEAR_TARGETS, projectionShape, type ModelConfig } from "../model/config.ts";

/** Positions served per sequence when none is asked: a model may declare 131072 (or 2^32-1) of them. */
export const DEFAULT_CONTEXT = 8192;

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

/**
 * The positions one sequence may hold: what is asked (default: the model's context length, at most
 * DEFAULT_CONTEXT), never more than the model's. The backend's RoPE tables and block tables are sized by it, not
 * by the model's declared context length, so a file declaring 2^32-1 positions allocates nothing for them.
 */
export function servedContext(config: ModelConfig, asked?: number): number {
  if (asked === undefined) return Math.min(config.maxSeqLen, DEFAULT_CONTEXT);
  if (!Number.isInteger(asked) || asked <= 0) throw new InvalidOptionError("context", `must be a positive integer`);
  if (asked > config.maxSeqLen) {
    throw new InvalidOptionError(
      "context",
      `${asked} positions exceed the model's context length ${config.maxSeqLen}`,
      "GGUF {arch}.context_length, config.json max_position_embeddings",
    );
  }
  return asked;
}

/**
 * Refuses a KV pool larger than half this machine's memory before allocating it, naming the context it was
 * sized for (an allocation that size fails with "Array buffer allocation failed", naming nothing).
 */
export function checkKvPool(config: ModelConfig, context: number, numBlocks: number, blockSize: number): void {
  const bytes = numBlocks * kvBlockBytes(config, blockSize);
  if (bytes > totalmem() / 2) {
    const gib = (n: number): string => `${(n / 2 ** 30).toFixed(1)} GiB`;
    throw new InvalidOptionError(
      "context",
      `a KV pool of ${numBlocks} blocks for a context of ${context} positions takes ${gib(bytes)}, more than half of this machine's ${gib(totalmem())}`,
      "ask for a shorter context or fewer KV blocks",
    );
  }
}
