// The simd backend: the forward pass in WebAssembly SIMD128 kernels (kernels/cpu/simd.ts, relaxed FMA) run by a
// pool of worker threads over one shared WebAssembly.Memory. Weights stay in the file's precision (f32, f16,
// bf16, Q8_0, Q4_0) and are decoded inside the matmul. The main thread only writes a step's descriptor and
// awaits the pool (Atomics.waitAsync), so the event loop stays free while a step runs on `threads` workers.
import { availableParallelism } from "node:os";
import { readFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type { LoraAdapter } from "../../adapter/lora.ts";
import { dequantizeRows } from "../../formats/weight-codec.ts";
import { LINEAR_TARGETS, projectionShape } from "../../model/config.ts";
import type { ModelWeights, WeightMatrix } from "../../model/weights.ts";
import { sampleToken } from "../../sampling/sample.ts";
import type { Backend, BackendOptions, SamplingParams, SequenceStep } from "../backend.ts";
import { checkAdapterFits, checkSteps } from "../checks.ts";
import { ActiveThreads } from "./active-threads.ts";
import { CTL, CTL_INTS, wakeWord } from "./control.ts";
import {
  DTYPE_CODE,
  planLayout,
  SEQ_FIELDS,
  SEQ_INTS,
  SLOT_INTS,
  type PlacedMatrix,
  type SimdLayout,
} from "./layout.ts";
import type { WorkerInput } from "./worker.ts";

export interface SimdBackendOptions extends BackendOptions {
  /** Worker threads; default: the machine's available parallelism. */
  threads?: number;
  /** Rows one pass holds (longer steps run as several passes); default 512. */
  maxRowsPerPass?: number;
}

const KERNELS = new URL("./kernels.wasm", import.meta.url);
const WORKER = new URL("./worker.ts", import.meta.url);
/** Sequences one pass holds: its logits buffer is maxSeqs x vocab floats. */
const MAX_SEQS = 128;

/** One piece of a step inside a pass: rows [from, from + count) of steps[seq]. */
interface Piece {
  seq: number;
  from: number;
  count: number;
}

/** Splits a step into passes of at most maxRows rows and maxSeqs pieces, in row order. */
function planPasses(steps: readonly SequenceStep[], maxRows: number, maxSeqs: number): Piece[][] {
  const passes: Piece[][] = [[]];
  let rows = 0;
  steps.forEach((step, seq) => {
    let from = 0;
    while (from < step.tokens.length) {
      let pass = passes[passes.length - 1];
      if (rows === maxRows || pass.length === maxSeqs) {
        pass = [];
        passes.push(pass);
        rows = 0;
      }
      const count = Math.min(step.tokens.length - from, maxRows - rows);
      pass.push({ seq, from, count });
      rows += count;
      from += count;
    }
  });
  return passes;
}

class SimdBackend implements Backend {
  readonly kind = "simd" as const;
  readonly device: string;
  readonly config: ModelWeights["config"];
  readonly options: SimdBackendOptions;
  readonly memoryBytes: number;
  readonly #layout: SimdLayout;
  readonly #memory: WebAssembly.Memory;
  readonly #ctl: Int32Array;
  readonly #tickets: Int32Array;
  readonly #workers: Worker[];
  readonly #i32: Int32Array;
  readonly #f32: Float32Array;
  readonly #bytes: Uint8Array;
  readonly #active: ActiveThreads;
  /** Workers woken for the last pass (all back when FINISHED reaches it), and its generation. */
  #woken = 0;
  #generation = 0;
  #failure: string | null = null;
  #busy = false;
  #closed = false;

  constructor(
    layout: SimdLayout,
    memory: WebAssembly.Memory,
    ctl: Int32Array,
    tickets: Int32Array,
    workers: Worker[],
    options: SimdBackendOptions,
  ) {
    this.#layout = layout;
    this.#tickets = tickets;
    this.#memory = memory;
    this.#ctl = ctl;
    this.#workers = workers;
    this.config = layout.config;
    this.options = options;
    this.memoryBytes = layout.bytes;
    this.#i32 = new Int32Array(memory.buffer);
    this.#f32 = new Float32Array(memory.buffer);
    this.#bytes = new Uint8Array(memory.buffer);
    this.#active = new ActiveThreads(layout.threads);
    const dtypes = [
      ...new Set([layout.embedding, ...layout.layers.flatMap((l) => [l.wq, l.wDown])].map((m) => m.dtype)),
    ].join("/");
    const threads = `${layout.threads} thread${layout.threads === 1 ? "" : "s"}`;
    this.device = `simd: WebAssembly SIMD128 on ${threads} (${dtypes} weights)`;
    for (const worker of workers) {
      worker.on("message", (message: { error?: string }) => {
        if (message.error) this.#failure = message.error;
      });
      worker.on("error", (error) => {
        this.#failure = String(error);
      });
    }
  }

  async setAdapter(slot: number, adapter: LoraAdapter | null): Promise<void> {
    const { adapterSlots } = this.options;
    if (!Number.isInteger(slot) || slot < 0 || slot >= adapterSlots)
      throw new RangeError(`adapter slot ${slot} outside 0..${adapterSlots - 1}`);
    if (adapter) checkAdapterFits(adapter, this.config, this.options);
    if (this.#busy) throw new Error("simd backend: setAdapter during a step");
    const layout = this.#layout;
    let at = layout.slotPool + slot * layout.slotBytes;
    for (let l = 0; l < this.config.nLayers; l++) {
      LINEAR_TARGETS.forEach((target, t) => {
        const entry = (layout.slotTable >> 2) + ((slot * this.config.nLayers + l) * 7 + t) * SLOT_INTS;
        const pair = adapter?.layers[l]?.[target];
        if (!pair) {
          this.#i32.fill(0, entry, entry + SLOT_INTS);
          return;
        }
        const { inDim, outDim } = projectionShape(this.config, target);
        const a = at;
        this.#f32.set(pair.a, a >> 2);
        const b = a + 4 * pair.rank * inDim;
        this.#f32.set(pair.b, b >> 2);
        at = b + 4 * outDim * pair.rank;
        this.#i32.set([pair.rank, a, b], entry);
      });
    }
  }

  async forward(steps: readonly SequenceStep[]): Promise<Float32Array> {
    checkSteps(steps, this.config, this.options);
    if (this.#closed) throw new Error("simd backend: closed");
    if (this.#busy) throw new Error("simd backend: forward while another step runs (callers serialize steps)");
    this.#busy = true;
    try {
      const vocab = this.config.vocabSize;
      const logits = new Float32Array(steps.length * vocab);
      for (const pass of planPasses(steps, this.#layout.maxRows, this.#layout.maxSeqs)) {
        // A worker still skipping through the previous pass's phases (descheduled while the others did them)
        // reads the descriptor: nothing is written until every worker is back at the start line.
        await this.#await(CTL.finished, (value) => value === this.#woken);
        this.#writePass(steps, pass);
        await this.#run();
        pass.forEach((piece, s) => {
          if (piece.from + piece.count !== steps[piece.seq].tokens.length) return; // not its last row
          const from = (this.#layout.logits >> 2) + s * vocab;
          logits.set(this.#f32.subarray(from, from + vocab), piece.seq * vocab);
        });
      }
      return logits;
    } finally {
      this.#busy = false;
    }
  }

  async sample(
    steps: readonly SequenceStep[],
    params: readonly SamplingParams[],
    uniforms: Float32Array,
  ): Promise<Int32Array> {
    const logits = await this.forward(steps);
    const vocab = this.config.vocabSize;
    return Int32Array.from(steps, (_, i) =>
      sampleToken(logits.subarray(i * vocab, (i + 1) * vocab), params[i], uniforms[i]),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.store(this.#ctl, CTL.stop, 1);
    for (let worker = 0; worker < this.#layout.threads; worker++) {
      Atomics.add(this.#ctl, wakeWord(worker), 1);
      Atomics.notify(this.#ctl, wakeWord(worker));
    }
    await Promise.all(this.#workers.map((w) => new Promise((resolve) => w.once("exit", resolve))));
  }

  /** Embeddings, positions, KV rows and sequence table of one pass. */
  #writePass(steps: readonly SequenceStep[], pass: readonly Piece[]): void {
    const layout = this.#layout;
    const { dim } = this.config;
    const embedding = placedView(this.#bytes, layout.embedding);
    const header = layout.step >> 2;
    let row = 0;
    let tableAt = 0;
    let anyLora = 0;
    pass.forEach((piece, s) => {
      const step = steps[piece.seq];
      const seq = (layout.seqs >> 2) + s * SEQ_INTS;
      const position = step.position + piece.from;
      this.#i32[seq + SEQ_FIELDS.start] = row;
      this.#i32[seq + SEQ_FIELDS.rows] = piece.count;
      this.#i32[seq + SEQ_FIELDS.slot] = step.slot;
      this.#i32[seq + SEQ_FIELDS.position] = position;
      this.#i32[seq + SEQ_FIELDS.table] = tableAt;
      this.#i32[seq + SEQ_FIELDS.last] = row + piece.count - 1;
      if (step.slot >= 0) anyLora = 1;
      const blocks = Math.ceil((position + piece.count) / layout.blockSize);
      for (let b = 0; b < blocks; b++) this.#i32[(layout.tables >> 2) + tableAt + b] = step.blockTable[b];
      tableAt += blocks;
      for (let i = 0; i < piece.count; i++, row++) {
        const p = position + i;
        this.#i32[(layout.positions >> 2) + row] = p;
        this.#i32[(layout.cacheRows >> 2) + row] =
          step.blockTable[Math.floor(p / layout.blockSize)] * layout.blockSize + (p % layout.blockSize);
        const x = (layout.x >> 2) + row * dim;
        dequantizeRows(embedding, step.tokens[piece.from + i], 1, this.#f32.subarray(x, x + dim));
      }
    });
    this.#i32[header] = row;
    this.#i32[header + 1] = pass.length;
    this.#i32[header + 2] = anyLora;
  }

  /**
   * Starts one pass on an idle pool, waking as many workers as the cores they got lately warrant, and waits,
   * without blocking the event loop, until its every chunk is done.
   */
  async #run(): Promise<void> {
    const ctl = this.#ctl;
    this.#tickets.fill(0);
    Atomics.store(ctl, CTL.done, 0);
    Atomics.store(ctl, CTL.finished, 0);
    const generation = ++this.#generation;
    this.#woken = this.#active.count;
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let worker = 0; worker < this.#woken; worker++) {
      Atomics.store(ctl, wakeWord(worker), generation);
      Atomics.notify(ctl, wakeWord(worker));
    }
    await this.#await(CTL.complete, (value) => value === generation);
    const used = process.cpuUsage(cpu);
    this.#active.record((used.user + used.system) / 1000, performance.now() - started);
  }

  /** Awaits until the control word satisfies `ready`, or a worker fails. */
  async #await(word: number, ready: (value: number) => boolean): Promise<void> {
    const ctl = this.#ctl;
    for (;;) {
      if (this.#failure || Atomics.load(ctl, CTL.failed) !== 0) {
        this.#closed = true;
        throw new Error(`simd backend: a worker failed: ${this.#failure ?? "unknown error"}`);
      }
      const value = Atomics.load(ctl, word);
      if (ready(value)) return;
      const wait = waitAsync(ctl, word, value, 1000);
      if (wait.async) await wait.value;
    }
  }
}

/** Atomics.waitAsync (Node 16+; TypeScript's ES2023 lib does not declare it). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      array: Int32Array,
      index: number,
      value: number,
      timeout: number,
    ): { async: boolean; value: Promise<string> | string };
  }
).waitAsync;

const MATRIX_KEYS = ["wq", "wk", "wv", "wo", "wGate", "wUp", "wDown"] as const;

/** What the kernels compute: the LLaMA block of the cpu reference (q width = dim, no biases or extra norms). */
const KNOWN_LAYER_KEYS = new Set(["attnNorm", "ffnNorm", "wq", "wk", "wv", "wo", "wGate", "wUp", "wDown"]);

/** Why the kernels cannot compute this model (a feature they lack, named), or null when they can. */
export function simdUnsupported(weights: ModelWeights): string | null {
  const { config } = weights;
  // A config carries `arch` only when it departs from plain LLaMA (model/config.ts withArchitecture).
  if (config.arch !== undefined) return `${config.arch.family} departures from plain LLaMA are not computed yet`;
  if (config.nHeads * config.headDim !== config.dim) {
    return `heads x head size ${config.nHeads} x ${config.headDim} != dim ${config.dim} is not supported yet`;
  }
  for (const [l, layer] of weights.layers.entries()) {
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined && !KNOWN_LAYER_KEYS.has(key))
        return `layer ${l} has ${key}, which it does not compute yet`;
    }
  }
  const matrices = [
    weights.tokenEmbedding,
    weights.classifier,
    ...weights.layers.flatMap((l) => MATRIX_KEYS.map((k) => l[k])),
  ];
  const undecoded = matrices.find((m) => DTYPE_CODE[m.dtype] === undefined);
  if (undecoded) return `${undecoded.dtype} weights are not decoded by its kernels yet`;
  return null;
}

/** A placed matrix as a WeightMatrix over the shared memory (for the main thread's embedding lookups). */
function placedView(bytes: Uint8Array, m: PlacedMatrix): WeightMatrix {
  return { dtype: m.dtype, rows: m.rows, cols: m.cols, data: bytes.subarray(m.offset, m.offset + m.bytes) };
}

/**
 * Creates the backend: lays out and fills the shared memory (weights copied in their precision), starts the
 * worker pool and waits until every worker has instantiated the kernels.
 */
export async function createSimdBackend(weights: ModelWeights, options: SimdBackendOptions): Promise<Backend> {
  for (const key of ["numBlocks", "blockSize"] as const) {
    if (!Number.isInteger(options[key]) || options[key] <= 0)
      throw new RangeError(`${key} must be a positive integer, got ${options[key]}`);
  }
  for (const key of ["adapterSlots", "maxRank"] as const) {
    if (!Number.isInteger(options[key]) || options[key] < 0)
      throw new RangeError(`${key} must be a non-negative integer, got ${options[key]}`);
  }
  const threads = options.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1)
    throw new RangeError(`threads must be a positive integer, got ${threads}`);
  const config = weights.config;
  const unsupported = simdUnsupported(weights);
  if (unsupported) throw new RangeError(`simd backend: ${unsupported}: use --backend cpu or webgpu`);
  const maxRows = options.maxRowsPerPass ?? 512;
  const layout = planLayout({
    config,
    options,
    threads,
    maxRows,
    maxSeqs: Math.min(MAX_SEQS, maxRows),
    embedding: weights.tokenEmbedding,
    classifier: weights.classifier,
    layers: weights.layers,
  });
  const memory = new WebAssembly.Memory({ initial: layout.bytes / 65536, maximum: layout.bytes / 65536, shared: true });
  const bytes = new Uint8Array(memory.buffer);
  const f32 = new Float32Array(memory.buffer);
  const put = (placed: PlacedMatrix, m: WeightMatrix): void => bytes.set(m.data, placed.offset);
  put(layout.embedding, weights.tokenEmbedding);
  if (layout.classifier !== layout.embedding) put(layout.classifier, weights.classifier);
  f32.set(weights.finalNorm, layout.finalNorm >> 2);
  weights.layers.forEach((lw, l) => {
    const placed = layout.layers[l];
    f32.set(lw.attnNorm, placed.attnNorm >> 2);
    f32.set(lw.ffnNorm, placed.ffnNorm >> 2);
    for (const key of MATRIX_KEYS) put(placed[key], lw[key]);
  });
  // RoPE angles as the reference computes them (pair i of a head turns by p * theta^(-2i / headDim)).
  const half = config.headDim / 2;
  for (let p = 0; p < config.maxSeqLen; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * Math.pow(config.ropeTheta, (-2 * i) / config.headDim);
      f32[(layout.ropeTable >> 2) + 2 * (p * half + i)] = Math.cos(angle);
      f32[(layout.ropeTable >> 2) + 2 * (p * half + i) + 1] = Math.sin(angle);
    }
  }
  const kernels = new WebAssembly.Module(readFileSync(KERNELS));
  const control = new SharedArrayBuffer(4 * (CTL_INTS + threads));
  const tickets = new SharedArrayBuffer(4 * (16 * config.nLayers + 8)); // claim counters: <= 15 phases a layer
  const workers: Worker[] = [];
  try {
    for (let index = 0; index < threads; index++) {
      const input: WorkerInput = { kernels, memory, control, tickets, layout, index };
      workers.push(new Worker(WORKER, { workerData: input, name: `simd-${index}` }));
    }
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            worker.once("message", () => resolve());
            worker.once("error", reject);
          }),
      ),
    );
  } catch (error) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw error;
  }
  return new SimdBackend(layout, memory, new Int32Array(control), new Int32Array(tickets), workers, {
    ...options,
    threads,
  });
}
