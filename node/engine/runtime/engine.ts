import { setImmediate as nextTurn } from "node:timers/promises";
import type { Backend, SamplingParams, SequenceStep } from "../backend/backend.ts";
import { Emitter } from "../emitter.ts";
import { BlockAllocator } from "../kv/block-allocator.ts";
import type { ModelConfig } from "../model/config.ts";
import type { QkBasis } from "../model/weights.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { Admission, DEFAULT_ADMISSION, type AdmissionTicket } from "./admission.ts";
import { AdapterStore } from "./adapter-store/adapter-store.ts";
import { DeviceLock } from "./device-lock.ts";
import { RequestStream } from "./request-stream.ts";
import { Scheduler, type Row } from "./scheduler.ts";
import { Sequence } from "./sequence.ts";
import { StepCostModel } from "./step-cost.ts";
import { Throughput } from "./throughput.ts";
import type {
  AdmissionOptions,
  AdapterEvents,
  AdapterInfo,
  AdapterListing,
  EngineEvents,
  EngineFinishReason,
  EngineLimits,
  EngineRequest,
  EngineStats,
  SchedulerOptions,
  Usage,
} from "./types.ts";
import { checkRequest, withPrompt, type CheckedRequest, type Limits, type ValidRequest } from "./validate.ts";
import { AdapterError, EngineBusyError } from "../errors.ts";

export interface EngineOptions {
  /** The backbone on its device; its options fix the KV pool and the adapter slots. The caller closes it. */
  backend: Backend;
  tokenizer: Tokenizer;
  /** The model's name: imported PEFT adapters must name it (or nothing) as their base model. */
  modelName: string;
  /** Other names imported PEFT adapters may give as their base model (a GGUF's hub id, say). */
  modelAliases?: readonly string[];
  /** q/k row order of the model's source files (PEFT lora_B follows it). Default "interleaved". */
  qkBasis?: QkBasis;
  /** Folder of the disk tier (content-addressed adapter store). */
  adapterDir: string;
  /** Host tier budget, bytes. Default 256 MiB. */
  hostBudgetBytes?: number;
  /** Largest max_tokens accepted. Default: the context length. */
  maxTokensLimit?: number;
  /** Largest prompt text in UTF-8 bytes, refused before tokenization. Default 16 x the context length. */
  maxPromptBytes?: number;
  /** How much work is accepted in total and per owner (admission.ts); beyond it submit throws EngineBusyError. */
  admission?: Partial<AdmissionOptions>;
  scheduler?: Partial<SchedulerOptions>;
}

const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1 };
/** Text prompts longer than this (bytes) are tokenized in slices between other work (Tokenizer.encodeAsync). */
const SYNC_PROMPT_BYTES = 4096;

/** The adapters as callers see them: one door to the three tiers (disk, host, GPU slots). */
export interface EngineAdapters {
  /** Imports a PEFT folder (checked against the model) into the disk and host tiers. */
  import(dir: string): Promise<AdapterInfo>;
  /** Registers canonical bytes (what peers send); the id is their sha256. */
  add(encoded: Uint8Array): Promise<AdapterInfo>;
  /** Makes an adapter resident in a GPU slot now. */
  load(id: string): Promise<void>;
  /** Drops an adapter from the slots and host memory; it stays registered. Refused while in use. */
  unload(id: string): Promise<void>;
  /** Deletes an adapter from the node. Refused while a request runs or waits on it. */
  remove(id: string): Promise<void>;
  has(id: string): boolean;
  /** Every registered adapter, its tier and size. */
  list(): AdapterListing[];
  /** The canonical bytes (checked against the id), as peers are sent them; null when absent or corrupted. */
  readBytes(id: string): Promise<Uint8Array | null>;
}

const ADAPTER_EVENTS: readonly (keyof AdapterEvents)[] = [
  "adapter:registered",
  "adapter:loaded",
  "adapter:load-failed",
  "adapter:evicted",
  "adapter:removed",
];

/**
 * The serving engine: one backbone, many adapters, continuous batching. submit() validates a request (bad
 * input throws InvalidRequestError at once) and returns its stream; one loop plans a step (scheduler.ts),
 * runs it on the backend with every row's adapter slot (SGMV), samples each finished row with its request's
 * own generator, and streams the tokens. What happens is reported as events (EngineEvents): adapters changing
 * tier, requests finishing with their usage, steps with their timing. Nothing here knows of money or networks.
 */
export class Engine extends Emitter<EngineEvents> {
  readonly adapters: EngineAdapters;
  readonly limits: EngineLimits;
  /** The backbone: its name (what adapters name as their base model) and shape. */
  readonly model: { name: string; config: ModelConfig };
  /** The backend's kind and device ("webgpu", "NVIDIA ..."), for logs and health checks. */
  readonly device: { kind: string; description: string; memoryBytes: number };
  #backend: Backend;
  #store: AdapterStore;
  #tokenizer: Tokenizer;
  #kv: BlockAllocator;
  #scheduler: Scheduler;
  #lock: DeviceLock;
  #limits: Limits;
  #throughput = new Throughput();
  /** What a step costs by its tokens: turns the scheduler's slowdown into a token cap per step. */
  #stepCost = new StepCostModel();
  #admission: Admission;
  #tokenizing = 0;
  #busy = 0;
  #nextId = 1;
  #totals = { prompt: 0, generated: 0, completed: 0 };
  #started = false;
  #closed = false;
  #loop: Promise<void> | null = null;
  #dirty = false;
  #idle: (() => void) | null = null;

  private constructor(options: EngineOptions, store: AdapterStore, lock: DeviceLock) {
    super();
    const { backend, tokenizer } = options;
    this.#backend = backend;
    this.#store = store;
    this.#tokenizer = tokenizer;
    this.#lock = lock;
    this.#kv = new BlockAllocator(backend.options.numBlocks, backend.options.blockSize);
    this.#scheduler = new Scheduler(this.#kv, store, options.scheduler);
    this.model = { name: options.modelName, config: backend.config };
    this.device = { kind: backend.kind, description: backend.device, memoryBytes: backend.memoryBytes };
    const maxSeqLen = backend.config.maxSeqLen;
    this.limits = {
      maxSeqLen,
      maxTokens: options.maxTokensLimit ?? maxSeqLen,
      kvPositions: backend.options.numBlocks * backend.options.blockSize,
      vocabSize: backend.config.vocabSize,
      maxRank: backend.options.maxRank,
      adapterSlots: backend.options.adapterSlots,
      maxPromptBytes: options.maxPromptBytes ?? 16 * maxSeqLen,
    };
    this.#admission = new Admission(
      { ...DEFAULT_ADMISSION, maxTokens: 32 * this.limits.kvPositions, ...options.admission },
      () => this.#throughput.perSecond(),
      (owner, error) => this.#yieldQueued(owner, error),
    );
    this.#limits = { ...this.limits, tokenizer, isRegistered: (id) => store.has(id) };
    this.adapters = {
      import: (dir) => store.importPeft(dir),
      add: (encoded) => store.add(encoded),
      load: async (id) => void (await store.load(id)),
      unload: (id) => store.unload(id),
      remove: (id) => this.#remove(id),
      has: (id) => store.has(id),
      list: () => store.list(),
      readBytes: (id) => store.readBytes(id),
    };
    for (const name of ADAPTER_EVENTS) store.on(name, (event) => this.emit(name, event as never));
    // A load that ended lets waiting requests in; a failed one fails the requests that wait for it.
    store.on("adapter:loaded", () => this.#wake());
    store.on("adapter:load-failed", ({ id, error }) => this.#adapterFailed(id, error));
  }

  /** Opens the adapter store (indexing its disk tier). Call start() to begin serving. */
  static async create(options: EngineOptions): Promise<Engine> {
    const lock = new DeviceLock();
    const store = await AdapterStore.open({
      dir: options.adapterDir,
      hostBudgetBytes: options.hostBudgetBytes ?? 256 * 2 ** 20,
      backend: options.backend,
      lock,
      modelName: options.modelName,
      modelAliases: options.modelAliases,
      qkBasis: options.qkBasis ?? "interleaved",
    });
    return new Engine(options, store, lock);
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
   * bad input (unknown adapter, prompt too long, max_tokens over the limit, bad sampling values), and
   * EngineBusyError when the engine (or the request's owner) holds all the work it accepts. A text prompt over
   * 4 KiB is tokenized between other work: a prompt found too long then fails the stream instead of throwing.
   */
  submit(request: EngineRequest): RequestStream {
    if (this.#closed) throw new Error("engine is closed");
    const checked = checkRequest(request, this.#limits);
    const { prompt } = checked;
    // Until tokenized, a text prompt counts as one token per byte (never fewer tokens than that), within the context.
    const promptEstimate = "ids" in prompt ? prompt.ids.length : Math.min(prompt.bytes + 1, this.limits.maxSeqLen);
    const ticket = this.#admit(checked.owner, promptEstimate + checked.maxTokens);
    const id = this.#nextId++;
    const stream = new RequestStream(id);
    if ("text" in prompt && prompt.bytes > SYNC_PROMPT_BYTES && this.#tokenizer.encodeAsync) {
      this.#tokenizeThenQueue(id, checked, prompt.text, ticket, stream, request.signal);
      return stream;
    }
    let valid: ValidRequest;
    try {
      const ids = "ids" in prompt ? prompt.ids : this.#tokenizer.encode(prompt.text, { bos: true });
      valid = withPrompt(checked, ids, this.#limits);
    } catch (error) {
      ticket.release();
      throw error;
    }
    this.#queue(id, valid, checked.owner, ticket, stream, request.signal);
    return stream;
  }

  #admit(owner: string, tokens: number): AdmissionTicket {
    try {
      return this.#admission.admit(owner, tokens);
    } catch (error) {
      if (error instanceof EngineBusyError) this.#busy++;
      throw error;
    }
  }

  /** A long text prompt: tokenized in slices (other requests run meanwhile), then queued or refused on its stream. */
  #tokenizeThenQueue(
    id: number,
    checked: CheckedRequest,
    text: string,
    ticket: AdmissionTicket,
    stream: RequestStream,
    signal: AbortSignal | undefined,
  ): void {
    this.#tokenizing++;
    this.#tokenizer.encodeAsync!(text, { bos: true })
      .then((ids) => {
        if (this.#closed) throw new Error("engine closed");
        this.#queue(id, withPrompt(checked, ids, this.#limits), checked.owner, ticket, stream, signal);
      })
      .catch((error: unknown) => {
        ticket.release();
        stream.fail(error);
      })
      .finally(() => this.#tokenizing--);
  }

  /** Queues a checked, tokenized request (or ends it at once: max_tokens 0, already aborted). */
  #queue(
    id: number,
    valid: ValidRequest,
    owner: string,
    ticket: AdmissionTicket,
    stream: RequestStream,
    signal: AbortSignal | undefined,
  ): void {
    ticket.resize(valid.promptIds.length + valid.maxTokens);
    const seq = new Sequence(id, id, valid, stream, this.#tokenizer, this.#scheduler.steps);
    seq.owner = owner;
    seq.admission = ticket;
    this.#totals.prompt += valid.promptIds.length;
    if (valid.maxTokens === 0) {
      this.#finish(seq, "length");
      return;
    }
    if (signal) {
      if (signal.aborted) {
        this.#finish(seq, "cancelled");
        return;
      }
      const onAbort = (): void => this.#cancel(seq);
      signal.addEventListener("abort", onAbort, { once: true });
      seq.stream.result.finally(() => signal.removeEventListener("abort", onAbort)).catch(() => {});
    }
    this.#scheduler.enqueue(seq);
    this.#wake();
  }

  stats(): EngineStats {
    const s = this.#scheduler;
    return {
      queue: {
        waiting: s.waiting.length,
        running: s.running.length,
        waitingForAdapter: s.waiting.filter(
          (q) => q.request.adapterId !== null && this.#store.readySlot(q.request.adapterId) < 0,
        ).length,
      },
      kv: { blockSize: this.#kv.blockSize, totalBlocks: this.#kv.numBlocks, freeBlocks: this.#kv.freeBlocks },
      slots: this.#store.slotStats(),
      tiers: this.#store.tierStats(),
      tokens: {
        prompt: this.#totals.prompt,
        generated: this.#totals.generated,
        perSecond: this.#throughput.perSecond(),
      },
      steps: s.steps,
      preemptions: s.preemptions,
      completed: this.#totals.completed,
      admission: { ...this.#admission.held(), tokenizing: this.#tokenizing },
      busy: this.#busy,
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
    await this.#store.close();
  }

  async #remove(id: string): Promise<void> {
    const users = [...this.#scheduler.running, ...this.#scheduler.waiting].filter((q) => q.request.adapterId === id);
    if (users.length > 0) throw new AdapterError(id, `is in use by ${users.length} queued or running request(s)`);
    await this.#store.remove(id);
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      this.#dirty = false;
      const rows = this.#scheduler.plan(this.#stepCost.tokenCap(this.#scheduler.options.slowdown));
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
    // SGMV wants rows ordered by adapter slot (the backend contract); the order is otherwise free.
    const ordered = [...rows].sort((a, b) => a.seq.slot - b.seq.slot);
    const steps: SequenceStep[] = ordered.map((r) => ({
      tokens: r.seq.input(r.from, r.to),
      position: r.from,
      blockTable: r.seq.blockTable,
      slot: r.seq.slot,
    }));
    const params = ordered.map((r) => (r.sample ? r.seq.request.params : GREEDY));
    const uniforms = Float32Array.from(ordered, (r) => (r.sample ? r.seq.rng() : 0));
    const startedAt = performance.now();
    let ids: Int32Array;
    try {
      ids = await this.#lock.run(() => this.#backend.sample(steps, params, uniforms));
    } catch (error) {
      for (const r of ordered) this.#fail(r.seq, error);
      return;
    }
    const tokens = steps.reduce((n, s) => n + s.tokens.length, 0);
    const ms = performance.now() - startedAt;
    this.#stepCost.observe(tokens, ms);
    this.emit("step", {
      step: this.#scheduler.steps,
      rows: steps.length,
      tokens,
      sampled: ordered.filter((r) => r.sample).length,
      ms,
    });
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
    seq.admission?.release();
    const rest = seq.text.flush();
    if (rest) seq.stream.push({ type: "text", text: rest });
    const usage = usageOf(seq, reason);
    this.#totals.completed++;
    seq.stream.push({ type: "usage", usage, text: seq.text.text });
    seq.stream.end({
      text: seq.text.text,
      tokenIds: [...seq.generated],
      promptTokenIds: [...seq.request.promptIds],
      usage,
    });
    this.emit("request:finished", { requestId: seq.id, adapterId: seq.request.adapterId, usage });
  }

  #fail(seq: Sequence, error: unknown): void {
    if (seq.state === "finished") return;
    this.#scheduler.drop(seq);
    seq.admission?.release();
    seq.stream.fail(error);
    this.emit("request:finished", {
      requestId: seq.id,
      adapterId: seq.request.adapterId,
      usage: usageOf(seq, "error"),
      error,
    });
  }

  /** Fails the youngest waiting request of `owner` that has not generated yet (admission takes its room back). */
  #yieldQueued(owner: string, error: unknown): boolean {
    const waiting = this.#scheduler.waiting;
    for (let i = waiting.length - 1; i >= 0; i--) {
      const seq = waiting[i];
      if (seq.owner !== owner || seq.generated.length > 0) continue;
      this.#fail(seq, error);
      return true;
    }
    return false;
  }

  /** A slot load failed: the requests waiting for that adapter fail with its error. */
  #adapterFailed(id: string, error: unknown): void {
    for (const seq of [...this.#scheduler.waiting]) if (seq.request.adapterId === id) this.#fail(seq, error);
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
    return new Promise((resolve) => {
      this.#idle = resolve;
    });
  }
}

/** A request's usage as of now (its times in ms from submit). */
function usageOf(seq: Sequence, reason: EngineFinishReason): Usage {
  const now = performance.now();
  return {
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
}
