// The WebGPU backend: the LLaMA forward pass and segmented LoRA (SGMV) in the WGSL kernels of kernels/.
//
// Its parts: device-memory.ts (every buffer, counted), step-buffers.ts (activations and step tables),
// device-model.ts (weights, KV pool, adapter pools and every dispatch site, bound once), pass-plan.ts (a step's
// rows cut into passes and their tables), forward-pass.ts (one pass, top to bottom), ops.ts (each kernel's
// parameters and workgroup counts). One pass = one submit; nothing is read back inside a step: forward() reads
// back the sequence ends' logits, sample() only their token ids.
//
// Calls must not overlap (they share the step buffers): the engine's DeviceLock serializes them, and an
// overlapping call is refused here rather than corrupting a step in flight.
import type { LoraAdapter } from "../../adapter/lora.ts";
import { LINEAR_TARGETS, projectionShape, type ModelConfig } from "../../model/config.ts";
import type { ModelWeights } from "../../model/weights.ts";
import type { Backend, BackendOptions, SamplingParams, SequenceStep } from "../backend.ts";
import { checkAdapterFits, checkSteps } from "../checks.ts";
import { openDevice, webgpuAvailable as probe, type GpuContext } from "./device.ts";
import { CapacityError } from "../../runtime/sizing.ts";
import { DeviceMemory, defaultMemoryBudget, planBackendCapacity } from "./device-memory.ts";
import { buildDeviceModel, type DeviceModel } from "./device-model.ts";
import { encodePass, samplingTable, uploadTables, type PassContext } from "./forward-pass.ts";
import { chooseKernels, type KernelChoices, type KernelPlan } from "./kernel-plan.ts";
import { ParamArena, Pipelines, StepEncoder } from "./kernels.ts";
import { packLoraSlot, type MatmulKind, type MatvecKind } from "./ops.ts";
import { nextDecodeSteps, passTables, sameCommands, splitPasses, stepRows } from "./pass-plan.ts";
import { allocateStepBuffers, type StepBuffers } from "./step-buffers.ts";
import { DeferredStepEncoder, type AheadStep } from "./step-ahead.ts";
import { StepTimer, TimedStepEncoder, type StepProfile } from "./step-profile.ts";
import { writeView } from "./tensors.ts";

export interface WebGpuBackendOptions extends Omit<BackendOptions, "numBlocks" | "adapterSlots">, KernelChoices {
  /**
   * KV blocks and adapter slots. Left out, each is sized from the memory the weights and step buffers leave of
   * `memoryBudget` (device-memory.ts planBackendCapacity); given, each is checked against it.
   */
  numBlocks?: number;
  adapterSlots?: number;
  /** Device memory the backend may hold, bytes. Default: device-memory.ts defaultMemoryBudget. */
  memoryBudget?: number;
  /** Storage binding limit to work under, bytes, when lower than the adapter's (tests of the sizing). */
  maxBindingBytes?: number;
  /** Sequences served at once (the scheduler's maxRunning): derived sizes hold a full context and a slot each. */
  sequences?: number;
  /**
   * Record the next decode step while the device runs this one (step-ahead.ts). Default true; false records
   * every step when it is asked for (the before of a before/after measurement).
   */
  pipeline?: boolean;
  /**
   * Store float32 weight matrices as f16 (halves the bytes read; any adapter: the kernels unpack halves
   * themselves). Matrices already in f16, bf16 or a block format stay as the file has them.
   */
  f16?: boolean;
  /** Rows per pass (activation capacity); default 256, lowered to fit the binding limit. */
  maxRowsPerPass?: number;
  /**
   * The kernel for steps of at most 4 rows: "portable" (matvec.wgsl), "splitk" (matvec-splitk.wgsl, needs
   * subgroups) or "matmul". Default: splitk on hardware adapters with subgroups, portable otherwise (lavapipe).
   */
  matvec?: MatvecKind;
  /**
   * The kernel for steps of more rows: "tiled" (matmul-tiled.wgsl, workgroup memory) or "blocked" (matmul.wgsl).
   * Default: tiled on hardware adapters, blocked on CPU-emulated ones (barriers are slow there).
   */
  matmul?: MatmulKind;
}

/** True when WebGPU finds an adapter (a GPU or the software Vulkan driver). Never throws. */
export async function webgpuAvailable(): Promise<boolean> {
  return probe();
}

/**
 * Creates the backend on the first WebGPU adapter: uploads the weights, allocates the KV pool and the adapter
 * slots, builds every pipeline. Throws (and frees the device) when there is no adapter or a buffer cannot fit.
 */
export async function createWebGpuBackend(
  weights: ModelWeights,
  options: WebGpuBackendOptions,
): Promise<WebGpuBackend> {
  const check = (key: keyof WebGpuBackendOptions, min: number, optional: boolean): void => {
    const value = options[key];
    if (optional && value === undefined) return;
    if (!Number.isInteger(value) || (value as number) < min) {
      throw new RangeError(`${key} must be ${min === 0 ? "a non-negative" : "a positive"} integer, got ${value}`);
    }
  };
  check("blockSize", 1, false);
  check("maxRank", 0, false);
  check("numBlocks", 1, true);
  check("adapterSlots", 0, true);
  check("maxBindingBytes", 1024, true);
  check("sequences", 1, true);
  if (options.memoryBudget !== undefined && !(options.memoryBudget > 0)) {
    throw new RangeError(`memoryBudget must be a positive number of bytes, got ${options.memoryBudget}`);
  }
  // shader-f16 wherever the adapter has it: the tiled matmul's f16 variant needs it (kernel-plan.ts).
  const ctx = await openDevice(true);
  const maxBinding = Math.min(ctx.maxBinding, options.maxBindingBytes ?? Infinity);
  const budget = options.memoryBudget ?? defaultMemoryBudget(ctx.isFallback);
  let memory: DeviceMemory | null = null;
  const arena = new ParamArena(ctx.device);
  try {
    const plan = planBackendCapacity(weights, options, {
      budget,
      maxBinding,
      maxRowsPerPass: options.maxRowsPerPass,
      f16: Boolean(options.f16),
      sequences: options.sequences ?? DEFAULT_SEQUENCES,
    });
    memory = new DeviceMemory(ctx.device, maxBinding, Boolean(options.f16));
    return await WebGpuBackend.build(weights, { ...options, ...plan }, ctx, memory, arena, budget);
  } catch (error) {
    memory?.destroy();
    arena.destroy();
    ctx.device.destroy();
    throw error;
  }
}

/** Sequences a backend is sized for when not told: the scheduler's default maxRunning. */
const DEFAULT_SEQUENCES = 64;

/** The options a backend runs with: the KV pool and slot count resolved. */
export type ResolvedWebGpuOptions = WebGpuBackendOptions & BackendOptions;

export class WebGpuBackend implements Backend {
  readonly kind = "webgpu";
  readonly device: string;
  readonly config: ModelConfig;
  readonly options: ResolvedWebGpuOptions;
  /** Device memory the backend was sized for, bytes (Infinity: unknown, the binding limits decided). */
  readonly memoryBudget: number;
  /** The kernel that runs passes of at most 4 rows, and the one for more rows (chosen from the adapter). */
  readonly matvec: MatvecKind;
  readonly matmul: MatmulKind;
  /** The variants of the LoRA, attention and norm kernels (kernel-plan.ts). */
  readonly kernels: KernelPlan;
  #ctx: GpuContext;
  #memory: DeviceMemory;
  #arena: ParamArena;
  #buffers: StepBuffers;
  #model: DeviceModel;
  /** Rank of every (slot, layer, target), mirrored in buffers.ranks. */
  #ranks: Uint32Array;
  #slotFilled: boolean[];
  #readback: GPUBuffer | null = null;
  /** The next decode step, recorded while this one ran (step-ahead.ts). */
  #ahead: AheadStep | null = null;
  #aheadSent = 0;
  #busy = false;
  #closed = false;

  private constructor(
    weights: ModelWeights,
    options: ResolvedWebGpuOptions,
    budget: number,
    ctx: GpuContext,
    memory: DeviceMemory,
    arena: ParamArena,
    matvec: MatvecKind,
    matmul: MatmulKind,
  ) {
    this.config = weights.config;
    this.options = options;
    this.memoryBudget = budget;
    this.matvec = matvec;
    this.matmul = matmul;
    this.kernels = chooseKernels(options, ctx);
    this.#ctx = ctx;
    this.#memory = memory;
    this.#arena = arena;
    this.#buffers = allocateStepBuffers(memory, weights.config, options);
    this.#model = buildDeviceModel(weights, options, {
      memory,
      pipelines: new Pipelines(ctx.device),
      arena,
      buffers: this.#buffers,
      matvec,
      matmul,
      kernels: this.kernels,
      isFallback: ctx.isFallback,
    });
    arena.finish();
    memory.count(arena.byteLength);
    this.#ranks = new Uint32Array(Math.max(1, options.adapterSlots) * weights.config.nLayers * 7);
    this.#slotFilled = new Array<boolean>(options.adapterSlots).fill(false);
    const formats = new Set(
      [
        this.#model.embedding,
        ...this.#model.layers.flatMap((l) => [l.qkv.matrix, l.wo.matrix, l.gateUp.matrix, l.down.matrix]),
      ].flatMap((m) => m.chunks.map((c) => c.format)),
    );
    this.device = `webgpu: ${ctx.description}${ctx.isFallback ? " (software)" : ""} (${[...formats].join(", ")} weights)`;
  }

  static async build(
    weights: ModelWeights,
    options: ResolvedWebGpuOptions,
    ctx: GpuContext,
    memory: DeviceMemory,
    arena: ParamArena,
    budget: number,
  ): Promise<WebGpuBackend> {
    let matvec = options.matvec ?? (ctx.hasSubgroups && !ctx.isFallback ? "splitk" : "portable");
    if (matvec === "splitk" && !ctx.hasSubgroups) matvec = "portable";
    const matmul = options.matmul ?? (ctx.isFallback ? "blocked" : "tiled");
    ctx.device.pushErrorScope("validation");
    ctx.device.pushErrorScope("out-of-memory");
    const backend = new WebGpuBackend(weights, options, budget, ctx, memory, arena, matvec, matmul);
    const oom = await ctx.device.popErrorScope();
    const invalid = await ctx.device.popErrorScope();
    // WebGPU reports no memory size: on a hardware adapter the sizes follow the binding limits, and the device
    // may still run out. Say which knob fixes it.
    if (oom) {
      throw new CapacityError(
        `webgpu backend: the device could not allocate ${memory.bytes} bytes of buffers (${oom.message})`,
        "give memoryBudget (or fewer numBlocks / adapterSlots) below the device's free memory",
      );
    }
    if (invalid) throw new Error(`webgpu backend: ${invalid.message}`);
    return backend;
  }

  get memoryBytes(): number {
    return this.#memory.bytes;
  }

  /** Steps sent as recorded while the step before them ran (the step pipeline's hits). */
  get stepsRecordedAhead(): number {
    return this.#aheadSent;
  }

  /** Bytes of device memory held for the model's weights, in their file's formats (memoryBytes includes them). */
  get weightBytes(): number {
    return this.#memory.weightBytes;
  }

  setAdapter(slot: number, adapter: LoraAdapter | null): Promise<void> {
    return this.#exclusive(async () => {
      const { adapterSlots } = this.options;
      if (!Number.isInteger(slot) || slot < 0 || slot >= adapterSlots) {
        throw new RangeError(`adapter slot ${slot} outside 0..${adapterSlots - 1}`);
      }
      if (adapter) checkAdapterFits(adapter, this.config, this.options);
      const device = this.#ctx.device;
      const rankStride = this.config.nLayers * 7;
      this.#model.layers.forEach((layer, l) => {
        for (let t = 0; t < 7; t++) {
          this.#ranks[slot * rankStride + l * 7 + t] = adapter?.layers[l]?.[LINEAR_TARGETS[t]]?.rank ?? 0;
        }
        if (!adapter) return;
        for (const group of layer.lora ?? []) {
          const outDims = group.targets.map((target) => projectionShape(this.config, target).outDim);
          const inDim = projectionShape(this.config, group.targets[0]).inDim;
          const pairs = group.targets.map((target) => adapter.layers[l]?.[target]);
          const { a, b } = packLoraSlot(group.shape, inDim, outDims, pairs);
          writeView(device, group.a, slot * a.byteLength, a);
          writeView(device, group.b, slot * b.byteLength, b);
        }
      });
      writeView(device, this.#buffers.ranks, 0, this.#ranks);
      this.#slotFilled[slot] = adapter !== null;
    });
  }

  forward(steps: readonly SequenceStep[]): Promise<Float32Array> {
    return this.#exclusive(async () => {
      const bytes = this.config.vocabSize * 4;
      return new Float32Array(await this.#run(steps, null, bytes));
    });
  }

  sample(
    steps: readonly SequenceStep[],
    params: readonly SamplingParams[],
    uniforms: Float32Array,
  ): Promise<Int32Array> {
    return this.#exclusive(async () => {
      checkSampling(steps, params, uniforms);
      return new Int32Array(await this.#run(steps, { params, uniforms }, 4));
    });
  }

  /**
   * Runs one step like sample() and reports where its time went (step-profile.ts): each dispatch's device time
   * where the adapter has timestamp queries and `timestamps` is not false, else only host and wall time.
   */
  profileSample(
    steps: readonly SequenceStep[],
    params: readonly SamplingParams[],
    uniforms: Float32Array,
    options: { timestamps?: boolean } = {},
  ): Promise<{ ids: Int32Array; profile: StepProfile }> {
    return this.#exclusive(async () => {
      checkSampling(steps, params, uniforms);
      const started = performance.now();
      const timer = this.#ctx.hasTimestamps && options.timestamps !== false ? new StepTimer(this.#ctx.device) : null;
      const host = { ms: 0 };
      const ids = new Int32Array(await this.#run(steps, { params, uniforms }, 4, timer, host));
      const wallMs = performance.now() - started;
      const dispatches = timer ? await timer.read() : [];
      return { ids, profile: { source: timer ? "timestamps" : "wall", dispatches, hostMs: host.ms, wallMs } };
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ahead = null;
    const device = this.#ctx.device;
    await device.queue.onSubmittedWorkDone();
    this.#memory.destroy();
    this.#readback?.destroy();
    this.#arena.destroy();
    device.destroy();
  }

  /**
   * Encodes and submits every pass of a step, then reads back `outBytes` per sequence. With a timer every
   * dispatch is timed on the device; `host` (when given) receives the host time of planning and encoding.
   */
  async #run(
    steps: readonly SequenceStep[],
    sampling: PassContext["sampling"],
    outBytes: number,
    timer: StepTimer | null = null,
    host: { ms: number } | null = null,
  ): Promise<ArrayBuffer> {
    const hostStarted = performance.now();
    checkSteps(steps, this.config, this.options);
    const bytes = steps.length * outBytes;
    const out = this.#readbackBuffer(bytes);
    const context: PassContext = {
      config: this.config,
      model: this.#model,
      buffers: this.#buffers,
      blockSize: this.options.blockSize,
      matvec: this.matvec,
      maxSubgroup: this.#ctx.maxSubgroup,
      sampling,
      out,
      outBytes,
    };
    const device = this.#ctx.device;
    const filled = (slot: number): boolean => this.#slotFilled[slot];
    const passes = splitPasses(stepRows(steps), this.#buffers.maxRows, this.#buffers.maxLast);
    const ahead = this.#ahead;
    this.#ahead = null;
    const first = passTables(passes[0], steps, this.options.blockSize, filled);
    if (
      ahead &&
      sampling &&
      !timer &&
      passes.length === 1 &&
      ahead.sequences === steps.length &&
      ahead.outBytes === outBytes &&
      sameCommands(ahead.tables, first)
    ) {
      // The step recorded while the last one ran (step-ahead.ts): its tables and draws, then its commands.
      uploadTables(device, this.#buffers, first);
      writeView(device, this.#buffers.sampleParams, 0, samplingTable(first, sampling, this.config.vocabSize));
      this.#arena.upload();
      device.queue.submit([ahead.commands]);
      this.#aheadSent++;
    } else {
      passes.forEach((rows, i) => {
        const tables = i === 0 ? first : passTables(rows, steps, this.options.blockSize, filled);
        const encoder = timer ? new TimedStepEncoder(device, this.#arena, timer) : new StepEncoder(device, this.#arena);
        encodePass(encoder, device, tables, context);
      });
    }
    if (sampling && !timer && this.options.pipeline !== false) this.#ahead = this.#recordAhead(steps, context);
    if (host) host.ms = performance.now() - hostStarted;
    await out.mapAsync(GPUMapMode.READ, 0, bytes);
    const result = out.getMappedRange(0, bytes).slice(0);
    out.unmap();
    return result;
  }

  /** Records the decode step that follows `steps` if every sequence goes on (step-ahead.ts); null if none can. */
  #recordAhead(steps: readonly SequenceStep[], context: PassContext): AheadStep | null {
    const next = nextDecodeSteps(steps, this.options.blockSize, this.config.maxSeqLen);
    if (!next) return null;
    const passes = splitPasses(stepRows(next), this.#buffers.maxRows, this.#buffers.maxLast);
    if (passes.length !== 1) return null;
    const tables = passTables(passes[0], next, this.options.blockSize, (slot) => this.#slotFilled[slot]);
    const encoder = new DeferredStepEncoder(this.#ctx.device, this.#arena);
    encodePass(encoder, this.#ctx.device, tables, context);
    return { tables, sequences: next.length, outBytes: context.outBytes, commands: encoder.commands! };
  }

  #readbackBuffer(bytes: number): GPUBuffer {
    if (!this.#readback || this.#readback.size < bytes) {
      this.#readback?.destroy();
      this.#readback = this.#ctx.device.createBuffer({
        label: "readback",
        size: Math.max(256, Math.ceil(bytes / 256) * 256),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
    }
    return this.#readback;
  }

  /** Runs one call; refuses a call that overlaps another (the caller must serialize them) or comes after close. */
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new Error("webgpu backend is closed");
    if (this.#busy) throw new Error("webgpu backend: calls overlap; serialize them (the engine's DeviceLock does)");
    this.#busy = true;
    try {
      return await fn();
    } finally {
      this.#busy = false;
    }
  }
}

/** One sampling parameter set and one draw per sequence. */
function checkSampling(
  steps: readonly SequenceStep[],
  params: readonly SamplingParams[],
  uniforms: Float32Array,
): void {
  if (params.length !== steps.length || uniforms.length < steps.length) {
    throw new RangeError(
      `sample: ${steps.length} sequences, ${params.length} sampling params, ${uniforms.length} draws`,
    );
  }
}
