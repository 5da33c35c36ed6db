import { setImmediate as nextTurn } from "node:timers/promises";
import type { Backend, SamplingParams, SequenceStep } from "../backend/backend.ts";
import { BlockAllocator } from "../kv/block-allocator.ts";
import type { QkBasis } from "../model/weights.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { AdapterStore } from "./adapter-store/adapter-store.ts";
import { DeviceLock } from "./device-lock.ts";
import { RequestStream } from "./request-stream.ts";
import { Scheduler, type Row } from "./scheduler.ts";
import { Sequence } from "./sequence.ts";
import { Throughput } from "./throughput.ts";
import type { AdapterInfo, AdapterTier, EngineFinishReason, EngineRequest, EngineStats, SchedulerOptions, Usage } from "./types.ts";
import { validateRequest, type Limits } from "./validate.ts";

export interface EngineOptions {
  /** The backbone on its device; its options fix the KV pool and the adapter slots. The caller closes it. */
  backend: Backend;
  tokenizer: Tokenizer;
  /** The model's name: imported PEFT adapters must name it (or nothing) as their base model. */
  modelName: string;
  /** q/k row order of the model's source files (PEFT lora_B follows it). Default "interleaved". */
  qkBasis?: QkBasis;
  /** Folder of the disk tier (content-addressed adapter store). */
  adapterDir: string;
  /** Host tier budget, bytes. Default 256 MiB. */
  hostBudgetBytes?: number;
  /** Largest max_tokens accepted. Default: the context length. */
  maxTokensLimit?: number;
  scheduler?: Partial<SchedulerOptions>;
}

const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1 };

/**
 * The serving engine: one backbone, many adapters, continuous batching. submit() validates a request (bad
 * input throws InvalidRequestError at once) and returns its stream; one loop plans a step (scheduler.ts),
 * runs it on the backend with every row's adapter slot (SGMV), samples each finished row with its request's
 * own generator, and streams the tokens. Nothing here knows of money or networks.
 */
export class Engine {
  readonly backend: Backend;
  readonly adapters: AdapterStore;
  #tokenizer: Tokenizer;
  #kv: BlockAllocator;
  #scheduler: Scheduler;
  #lock: DeviceLock;
  #limits: Limits;
  #throughput = new Throughput();
  #nextId = 1;
  #totals = { prompt: 0, generated: 0, completed: 0 };
  #started = false;
  #closed = false;
  #loop: Promise<void> | null = null;
  #dirty = false;
  #idle: (() => void) | null = null;

  private constructor(options: EngineOptions, adapters: AdapterStore, lock: DeviceLock) {
    const { backend, tokenizer } = options;
    this.backend = backend;
    this.adapters = adapters;
    this.#tokenizer = tokenizer;
    this.#lock = lock;
    this.#kv = new BlockAllocator(backend.options.numBlocks, backend.options.blockSize);
    this.#scheduler = new Scheduler(this.#kv, adapters, options.scheduler);
    const maxSeqLen = backend.config.maxSeqLen;
    this.#limits = {
      tokenizer,
      vocabSize: backend.config.vocabSize,
      maxSeqLen,
      kvPositions: backend.options.numBlocks * backend.options.blockSize,
      maxTokensLimit: options.maxTokensLimit ?? maxSeqLen,
      isRegistered: (id) => adapters.has(id),
    };
  }

  /** Opens the adapter store (indexing its disk tier). Call start() to begin serving. */
  static async create(options: EngineOptions): Promise<Engine> {
    const lock = new DeviceLock();
    let engine: Engine | null = null;
    const adapters = await AdapterStore.open({
      dir: options.adapterDir,
      hostBudgetBytes: options.hostBudgetBytes ?? 256 * 2 ** 20,
      backend: options.backend,
      lock,
      modelName: options.modelName,
      qkBasis: options.qkBasis ?? "interleaved",
      onLoaded: (id, error) => { if (engine) engine.#adapterLoaded(id, error); },
    });
    engine = new Engine(options, adapters, lock);
    return engine;
  }

  /** Starts the step loop. */
  start(): void {
    if (this.#closed) throw new Error("engine is closed");
    if (this.#started) return;
    this.#started = true;
    this.#loop = this.#run();
  }

  /**
   * Queues a request and returns its stream of events (tokens, then usage). Throws InvalidRequestError for
   * bad input (unknown adapter, prompt too long, max_tokens over the limit, bad sampling values).
   */
  submit(request: EngineRequest): RequestStream {
    if (this.#closed) throw new Error("engine is closed");
    const valid = validateRequest(request, this.#limits);
    const id = this.#nextId++;
    const seq = new Sequence(id, id, valid, new RequestStream(id), this.#tokenizer, this.#scheduler.steps);
    this.#totals.prompt += valid.promptIds.length;
    if (valid.maxTokens === 0) {
      this.#finish(seq, "length");
      return seq.stream;
    }
    const signal = request.signal;
    if (signal) {
      if (signal.aborted) {
        this.#finish(seq, "cancelled");
        return seq.stream;
      }
      const onAbort = (): void => this.#cancel(seq);
      signal.addEventListener("abort", onAbort, { once: true });
      seq.stream.result.finally(() => signal.removeEventListener("abort", onAbort)).catch(() => {});
    }
    this.#scheduler.enqueue(seq);
    this.#wake();
    return seq.stream;
  }

  /** Imports a PEFT folder into the disk tier (and the host tier); returns its id. */
  importAdapter(dir: string): Promise<AdapterInfo> {
    return this.adapters.importPeft(dir);
  }

  /** Registers an adapter from its canonical bytes (what peers send); the id is their sha256. */
  addAdapter(encoded: Uint8Array): Promise<AdapterInfo> {
    return this.adapters.add(encoded);
  }

  /** Makes an adapter resident in a GPU slot now. */
  async loadAdapter(id: string): Promise<void> {
    await this.adapters.load(id);
  }

  /** Drops an adapter from the slots and host memory (it stays registered on disk); refused while in use. */
  unloadAdapter(id: string): Promise<void> {
    return this.adapters.unload(id);
  }

  /** Every registered adapter and where it is. */
  listAdapters(): { id: string; tier: AdapterTier }[] {
    return this.adapters.list();
  }

  stats(): EngineStats {
    const s = this.#scheduler;
    return {
      queue: {
        waiting: s.waiting.length,
        running: s.running.length,
        waitingForAdapter: s.waiting.filter((q) => q.request.adapterId !== null && this.adapters.readySlot(q.request.adapterId) < 0).length,
      },
      kv: { blockSize: this.#kv.blockSize, totalBlocks: this.#kv.numBlocks, freeBlocks: this.#kv.freeBlocks },
      slots: this.adapters.slotStats(),
      tiers: this.adapters.tierStats(),
      tokens: { prompt: this.#totals.prompt, generated: this.#totals.generated, perSecond: this.#throughput.perSecond() },
      steps: s.steps,
      preemptions: s.preemptions,
      completed: this.#totals.completed,
    };
  }

  /** Stops the loop; requests still queued or running fail with "engine closed". The backend stays open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake();
    await this.#loop;
    const error = new Error("engine closed");
    for (const seq of [...this.#scheduler.running, ...this.#scheduler.waiting]) this.#fail(seq, error);
    await this.adapters.close();
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      this.#dirty = false;
      const rows = this.#scheduler.plan();
      if (rows.length === 0) {
        await this.#waitForWork();
        continue;
      }
      await this.#step(rows);
      await nextTurn(); // let submits, aborts and adapter loads in
    }
  }

  /** Runs one planned step on the backend and hands every sampled token to its sequence. */
  async #step(rows: Row[]): Promise<void> {
    // SGMV wants rows ordered by adapter slot; the order is otherwise free.
    const ordered = [...rows].sort((a, b) => a.seq.slot - b.seq.slot);
    const steps: SequenceStep[] = ordered.map((r) => ({ tokens: r.seq.input(r.from, r.to), position: r.from, blockTable: r.seq.blockTable, slot: r.seq.slot }));
    const params = ordered.map((r) => (r.sample ? r.seq.request.params : GREEDY));
    const uniforms = Float32Array.from(ordered, (r) => (r.sample ? r.seq.rng() : 0));
    let ids: Int32Array;
    try {
      ids = await this.#lock.run(() => this.backend.sample(steps, params, uniforms));
    } catch (error) {
      for (const r of ordered) this.#fail(r.seq, error);
      return;
    }
    let generated = 0;
    ordered.forEach((row, i) => {
      const seq = row.seq;
      if (seq.state !== "running") return; // cancelled while the step ran
      seq.computed = row.to;
      if (!row.sample) return;
      if (seq.firstTokenAt < 0) seq.firstTokenAt = performance.now();
      const { piece, finish } = seq.text.push(ids[i]);
      if (finish === "eos") return this.#finish(seq, "eos");
      generated++;
      const done = finish ?? (seq.generated.length >= seq.request.maxTokens ? "length" : null);
      const text = done ? piece + seq.text.flush() : piece;
      seq.stream.push({ type: "token", tokenId: ids[i], text });
      if (done) this.#finish(seq, done);
    });
    this.#totals.generated += generated;
    this.#throughput.add(generated);
  }

  #cancel(seq: Sequence): void {
    if (seq.state === "finished") return;
    this.#finish(seq, "cancelled");
    this.#wake();
  }

  /** Ends a request: frees its blocks and pin, sends the rest of its text and its usage. */
  #finish(seq: Sequence, reason: EngineFinishReason): void {
    this.#scheduler.drop(seq);
    const rest = seq.text.flush();
    if (rest) seq.stream.push({ type: "text", text: rest });
    const now = performance.now();
    const usage: Usage = {
      promptTokens: seq.request.promptIds.length,
      completionTokens: seq.generated.length,
      finishReason: reason,
      preemptions: seq.preemptions,
      timings: {
        queueMs: (seq.admittedAt < 0 ? now : seq.admittedAt) - seq.submittedAt,
        ttftMs: (seq.firstTokenAt < 0 ? now : seq.firstTokenAt) - seq.submittedAt,
        totalMs: now - seq.submittedAt,
      },
    };
    this.#totals.completed++;
    seq.stream.push({ type: "usage", usage, text: seq.text.text });
    seq.stream.end({ text: seq.text.text, tokenIds: [...seq.generated], usage });
  }

  #fail(seq: Sequence, error: unknown): void {
    if (seq.state === "finished") return;
    this.#scheduler.drop(seq);
    seq.stream.fail(error);
  }

  /** A slot load ended: wake the loop; on failure, fail the requests waiting for that adapter. */
  #adapterLoaded(id: string, error?: unknown): void {
    if (error !== undefined) {
      for (const seq of [...this.#scheduler.waiting]) if (seq.request.adapterId === id) this.#fail(seq, error);
    }
    this.#wake();
  }

  #wake(): void {
    this.#dirty = true;
    const idle = this.#idle;
    this.#idle = null;
    idle?.();
  }

  #waitForWork(): Promise<void> {
    if (this.#dirty || this.#closed) return Promise.resolve();
    return new Promise((resolve) => { this.#idle = resolve; });
  }
}
