// Every buffer the backend holds on the device, counted: the backend's memoryBytes and its close() come from here.
// And what they will take before anything is allocated: the sizes the KV pool and the adapter slots are planned by.
import { totalmem } from "node:os";
import { projectionShape, type ModelConfig } from "../../model/config.ts";
import type { ModelWeights, WeightMatrix } from "../../model/weights.ts";
import { kvBlockBytes, planCapacity, type CapacityPlan } from "../../runtime/sizing.ts";
import { LORA_GROUPS } from "./device-model.ts";
import { pad4 } from "./kernels.ts";
import { loraGroupShape } from "./ops.ts";
import { stepBufferBytes, stepBufferLayout, type StepBufferOptions } from "./step-buffers.ts";
import { deviceRowBytes, storageBuffer, uploadMatrix, type DeviceMatrix } from "./tensors.ts";

export class DeviceMemory {
  readonly device: GPUDevice;
  /** The largest storage binding the device allows: a buffer above it cannot be bound whole. */
  readonly maxBinding: number;
  /** Store float32 weight matrices as f16 (other formats stay as the file has them). */
  readonly f16: boolean;
  #buffers: GPUBuffer[] = [];
  #bytes = 0;
  #weightBytes = 0;

  constructor(device: GPUDevice, maxBinding: number, f16: boolean) {
    this.device = device;
    this.maxBinding = maxBinding;
    this.f16 = f16;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes of the model's weights among them (matrices in their formats, and the weight vectors). */
  get weightBytes(): number {
    return this.#weightBytes;
  }

  /** A zero-filled storage buffer (optionally initialized); throws when it could not be bound whole. */
  buffer(label: string, bytes: number, data?: ArrayBufferView): GPUBuffer {
    if (bytes > this.maxBinding) {
      throw new RangeError(
        `webgpu: ${label} needs ${bytes} bytes in one binding, the device allows ${this.maxBinding}`,
      );
    }
    return this.#keep(storageBuffer(this.device, label, bytes, data));
  }

  /** A float32 vector of the model's weights (a norm, a bias). */
  weightVector(label: string, data: Float32Array): GPUBuffer {
    const buffer = this.buffer(label, data.byteLength, data);
    this.#weightBytes += buffer.size;
    return buffer;
  }

  /** A weight matrix (several stacked parts) in its file's formats, split under the binding limit. */
  matrix(label: string, parts: readonly WeightMatrix[]): DeviceMatrix {
    const m = uploadMatrix(this.device, label, parts, { maxBinding: this.maxBinding, f16: this.f16 });
    for (const c of m.chunks) this.#keep(c.buffer);
    this.#weightBytes += m.bytes;
    return m;
  }

  /** Counts bytes held outside buffers made here (the parameter arena). */
  count(bytes: number): void {
    this.#bytes += bytes;
  }

  destroy(): void {
    for (const b of this.#buffers) b.destroy();
    this.#buffers = [];
  }

  #keep(buffer: GPUBuffer): GPUBuffer {
    this.#buffers.push(buffer);
    this.#bytes += buffer.size;
    return buffer;
  }
}

/**
 * Device memory a backend may use when no budget is given. WebGPU reports no memory size: a software adapter
 * (lavapipe) allocates from the host, so half of the host's memory; for a hardware adapter the budget is unknown
 * (Infinity) and the sizes follow the binding limits and what serving can use (planBackendCapacity).
 */
export function defaultMemoryBudget(isSoftware: boolean): number {
  return isSoftware ? totalmem() / 2 : Infinity;
}

/** Bytes the weights take on the device in their formats (f32 as f16 when asked): an upper bound, chunk padding in. */
export function deviceWeightBytes(weights: ModelWeights, f16: boolean, maxBinding: number): number {
  const matrix = (m: WeightMatrix): number => {
    const format = m.dtype === "f32" && f16 ? "f16" : m.dtype;
    const perRow = deviceRowBytes(format, m.cols, pad4(m.cols) / 4);
    const chunks = Math.ceil(m.rows / Math.max(1, Math.floor((maxBinding - 32) / perRow)));
    return m.rows * perRow + 32 * chunks;
  };
  const vectors = (record: object): number =>
    Object.values(record).reduce((n: number, v) => n + (v instanceof Float32Array ? v.byteLength + 16 : 0), 0);
  const tied = weights.classifier === weights.tokenEmbedding;
  let bytes = matrix(weights.tokenEmbedding) + (tied ? 0 : matrix(weights.classifier)) + vectors(weights);
  for (const layer of weights.layers) {
    bytes += vectors(layer);
    for (const m of [layer.wq, layer.wk, layer.wv, layer.wo, layer.wGate, layer.wUp, layer.wDown]) bytes += matrix(m);
  }
  return bytes;
}

/**
 * One adapter slot on the device (every layer's A and B pools at the slot rank, rounded up to 4), and the most
 * slots one binding holds (device-model.ts binds each group's A pool and B pool whole).
 */
export function deviceSlotBytes(
  config: ModelConfig,
  maxRank: number,
  maxBinding: number,
): { bytes: number; max: number } {
  if (maxRank <= 0) return { bytes: 0, max: Infinity };
  let perLayer = 0;
  let largest = 0;
  for (const targets of LORA_GROUPS) {
    const inDim = projectionShape(config, targets[0]).inDim;
    const outDims = targets.map((t) => projectionShape(config, t).outDim);
    const shape = loraGroupShape(inDim, outDims, pad4(maxRank), 0);
    const a = targets.length * shape.rs * shape.K4 * 16;
    const b = shape.N * shape.rs * 4;
    perLayer += a + b;
    largest = Math.max(largest, a, b);
  }
  return { bytes: config.nLayers * perLayer, max: Math.floor(maxBinding / largest) };
}

export interface DeviceSizing {
  /** Device memory the backend may use, bytes (Infinity: unknown). */
  budget: number;
  maxBinding: number;
  /** Rows per pass (activation capacity), default 256. */
  maxRowsPerPass?: number;
  /** Store float32 weights as f16. */
  f16: boolean;
  /** Sequences served at once (the scheduler's maxRunning): KV for more full contexts buys nothing. */
  sequences: number;
}

/**
 * The KV blocks and adapter slots of a webgpu backend: counts given are checked, counts left out are sized from
 * the budget the weights and step buffers leave (sizing.ts planCapacity), within the storage binding limit (each
 * layer's K and V pool and each slot pool is one binding) and what `sequences` sequences can use: a full context
 * each, and one slot each.
 */
export function planBackendCapacity(
  weights: ModelWeights,
  options: Omit<StepBufferOptions, "adapterSlots"> & { numBlocks?: number; adapterSlots?: number },
  sizing: DeviceSizing,
): CapacityPlan {
  const { config } = weights;
  const { blockSize, maxRank } = options;
  // The rank table grows with the slot count; the derived count's few bytes a slot fall in the reserve.
  const layout = stepBufferLayout(
    config,
    { blockSize, maxRank, adapterSlots: options.adapterSlots ?? 0, maxRowsPerPass: sizing.maxRowsPerPass },
    sizing.maxBinding,
  );
  const fixed = deviceWeightBytes(weights, sizing.f16, sizing.maxBinding) + stepBufferBytes(layout);
  const slot = deviceSlotBytes(config, maxRank, sizing.maxBinding);
  const poolRow = blockSize * config.nKvHeads * config.headDim * 4;
  return planCapacity({
    config,
    deviceBytes: sizing.budget,
    weightBytes: fixed,
    maxRank,
    blockSize,
    numBlocks: options.numBlocks,
    adapterSlots: options.adapterSlots,
    blockBytes: kvBlockBytes(config, blockSize),
    slotBytes: slot.bytes,
    maxBlocks: Math.floor(sizing.maxBinding / poolRow),
    maxSlots: slot.max,
    usefulBlocks: sizing.sequences * Math.ceil(config.maxSeqLen / blockSize),
    usefulSlots: sizing.sequences,
  });
}
