import { totalmem } from "node:os";
import { InvalidOptionError, OpenLoraError } from "../errors.ts";
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

/** The device cannot hold what is asked: the model alone, or a KV pool of one full context beside it. */
export class CapacityError extends OpenLoraError {
  override name = "CapacityError";
  constructor(message: string, hint: string) {
    super("device_capacity", message, { blame: "node", hint });
  }
}

const gib = (n: number): string => `${(n / 2 ** 30).toFixed(2)} GiB`;

/**
 * Splits the device memory left after the backbone between adapter slots and the KV pool: the slot count when
 * given, else `adapterShare` of what is left (at least one slot); the KV pool takes the rest (or the count given,
 * checked). Both stay within what the device's bindings hold (maxBlocks, maxSlots) and what serving can use
 * (usefulBlocks, usefulSlots), so an unknown budget (Infinity) sizes by those alone. Throws CapacityError when
 * the backbone alone exceeds the budget, or the pool could not hold one full context.
 */
export function planCapacity(options: {
  config: ModelConfig;
  /** Device memory the node may use, bytes (Infinity: unknown; the caps decide). */
  deviceBytes: number;
  /** Bytes the backend holds whatever the sizes: the backbone's weights (and its step buffers). */
  weightBytes: number;
  maxRank: number;
  blockSize: number;
  /** Fixed slot count (from config); otherwise derived. */
  adapterSlots?: number;
  /** Fixed KV block count; otherwise derived. */
  numBlocks?: number;
  /** Share of the free memory for slots when the count is derived. Default 0.1. */
  adapterShare?: number;
  /** Share kept back for activations and scratch. Default 0.05. */
  reserveShare?: number;
  /** One KV block and one adapter slot on the device, bytes. Default: kvBlockBytes and slotBytes (float32). */
  blockBytes?: number;
  slotBytes?: number;
  /** The most blocks and slots the device's bindings hold (a layer's pool, a slot pool: one binding each). */
  maxBlocks?: number;
  maxSlots?: number;
  /** Blocks and slots past which more memory buys nothing for serving. Default: no limit. */
  usefulBlocks?: number;
  usefulSlots?: number;
}): CapacityPlan {
  const { config, maxRank, blockSize, deviceBytes, weightBytes } = options;
  const hint = "give the device a larger memory budget, or use a smaller weight format, context or slot rank";
  if (weightBytes >= deviceBytes) {
    throw new CapacityError(
      `the model alone takes ${gib(weightBytes)} of device memory, more than the budget of ${gib(deviceBytes)}`,
      hint,
    );
  }
  const free = (deviceBytes - weightBytes) * (1 - (options.reserveShare ?? 0.05));
  const slot = options.slotBytes ?? slotBytes(config, maxRank);
  const block = options.blockBytes ?? kvBlockBytes(config, blockSize);
  const maxSlots = options.maxSlots ?? Infinity;
  const maxBlocks = options.maxBlocks ?? Infinity;
  const slotCap = Math.min(maxSlots, options.usefulSlots ?? Infinity);
  let adapterSlots = options.adapterSlots;
  if (adapterSlots === undefined) {
    adapterSlots =
      slot === 0 ? 0 : Math.min(slotCap, Math.max(1, Math.floor((free * (options.adapterShare ?? 0.1)) / slot)));
  } else if (adapterSlots > maxSlots) {
    throw new CapacityError(
      `${adapterSlots} adapter slots exceed the ${maxSlots} one binding of the device holds`,
      hint,
    );
  }
  const room = Math.floor((free - adapterSlots * slot) / block);
  const numBlocks = options.numBlocks ?? Math.min(room, maxBlocks, options.usefulBlocks ?? Infinity);
  if (!Number.isFinite(numBlocks) || !Number.isFinite(adapterSlots)) {
    throw new RangeError(
      "planCapacity: an unknown budget needs finite caps (maxBlocks/usefulBlocks, maxSlots/usefulSlots)",
    );
  }
  if (numBlocks > maxBlocks) {
    throw new CapacityError(`${numBlocks} KV blocks exceed the ${maxBlocks} one binding of the device holds`, hint);
  }
  if (numBlocks > room) {
    throw new CapacityError(
      `${numBlocks} KV blocks and ${adapterSlots} adapter slots need ${gib(numBlocks * block + adapterSlots * slot)}; ${gib(deviceBytes)} leave ${gib(free)} beside the model`,
      hint,
    );
  }
  // A pool sized here must hold one full context; a count given is the caller's choice.
  const needed = Math.ceil(config.maxSeqLen / blockSize);
  if (options.numBlocks === undefined && numBlocks < needed) {
    const limit =
      numBlocks === maxBlocks
        ? `a binding of the device holds ${maxBlocks} KV blocks`
        : `${deviceBytes === Infinity ? "the device" : gib(deviceBytes)} leave room for ${Math.max(0, numBlocks)} KV blocks with ${adapterSlots} adapter slots`;
    throw new CapacityError(`${limit}; one full context needs ${needed}`, hint);
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
