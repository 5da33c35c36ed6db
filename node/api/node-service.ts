// The node: engine, ledger, model catalog, (in paid mode) chain, payment gate, peer network and settlement, and
// the HTTP API in front, started in that order and stopped in the reverse one within a bounded time.
import { mkdir } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyInstance } from "fastify";
import {
  chatTemplateOf,
  loadModel,
  openEngine,
  type AdmissionOptions,
  type BackendChoice,
  type Engine,
  type OpenedEngine,
  type SchedulerOptions,
} from "../engine/index.ts";
import { Ledger } from "../ledger/index.ts";
import { importAdapterFolder, type ImportedAdapter } from "./adapter-folder.ts";
import { loadOrCreateAdminToken } from "./admin-token.ts";
import type { ApiContext } from "./context.ts";
import { errorFields, jsonLogger, type Logger } from "./log.ts";
import { NodeMetrics } from "./metrics/node-metrics.ts";
import { ModelCatalog } from "./model-catalog.ts";
import { PaidMode, type PaidModeOptions } from "./paid-mode.ts";
import { createServer } from "./server.ts";

export interface NodeServiceOptions {
  /** Holds the ledger, the adapter store, aliases, the admin token and the peer key. */
  dataDir: string;
  /** Model path (any format loadModel takes). */
  model: string;
  backend?: BackendChoice;
  /** simd backend: worker threads (default: the machine's available parallelism). */
  threads?: number;
  adapterSlots?: number;
  maxRank?: number;
  /** Host tier budget in bytes. */
  hostCacheBytes?: number;
  /** Work the engine holds in total and per owner (a paid request's owner is its payer). Default: the engine's. */
  admission?: Partial<AdmissionOptions>;
  /** Batch knobs, the step cost cap's slowdown among them (SchedulerOptions). Default: the engine's. */
  scheduler?: Partial<SchedulerOptions>;
  /** A folder of PEFT folders imported at start, each aliased by its folder name. */
  adapters?: string;
  /** Where the API listens; port 0 picks a free one. */
  api: { host: string; port: number };
  /** The admin routes' bearer token; default: made once and kept in the data folder. */
  adminToken?: string;
  /** Requests in flight get this long to finish at shutdown before they are cancelled. Default 10 s. */
  drainMs?: number;
  /** Paid mode: the chain, the operator's wallet, the price, settlement and the peer network. Absent: free mode. */
  paid?: PaidModeOptions;
  /** Paid mode: send a settlement batch at shutdown (bounded; a batch not mined stays pending). Default true. */
  settleOnStop?: boolean;
  log?: Logger;
  onProgress?: (progress: StartProgress) => void;
}

export interface StartProgress {
  stage: "ledger" | "model" | "adapters" | "chain" | "p2p" | "api";
  done: number;
  total: number;
  /** What was just done (an adapter's name). */
  detail?: string;
}

/** Each part gets this long to stop at shutdown before the next is stopped anyway. */
const STOP_STEP_MS = 5_000;

export class NodeService {
  readonly engine: Engine;
  readonly ledger: Ledger;
  readonly catalog: ModelCatalog;
  readonly metrics: NodeMetrics;
  readonly imported: ImportedAdapter[];
  readonly adminToken: { token: string; source: string };
  /** Paid mode's parts (null in free mode). */
  readonly paid: PaidMode | null;
  /** Base URL of the API, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly #opened: OpenedEngine;
  readonly #app: FastifyInstance;
  readonly #ctx: ApiContext;
  readonly #drainMs: number;
  readonly #settleOnStop: boolean;
  #stopping: Promise<void> | null = null;

  /** The longest stop() can take: the drain, then each part's bounded step. */
  get stopBoundMs(): number {
    return this.#drainMs + 5 * STOP_STEP_MS;
  }

  private constructor(parts: {
    opened: OpenedEngine;
    ledger: Ledger;
    catalog: ModelCatalog;
    metrics: NodeMetrics;
    imported: ImportedAdapter[];
    adminToken: { token: string; source: string };
    paid: PaidMode | null;
    app: FastifyInstance;
    ctx: ApiContext;
    url: string;
    drainMs: number;
    settleOnStop: boolean;
  }) {
    this.#opened = parts.opened;
    this.engine = parts.opened.engine;
    this.ledger = parts.ledger;
    this.catalog = parts.catalog;
    this.metrics = parts.metrics;
    this.imported = parts.imported;
    this.adminToken = parts.adminToken;
    this.paid = parts.paid;
    this.#settleOnStop = parts.settleOnStop;
    this.#app = parts.app;
    this.#ctx = parts.ctx;
    this.url = parts.url;
    this.#drainMs = parts.drainMs;
  }

  static async start(options: NodeServiceOptions): Promise<NodeService> {
    const progress = options.onProgress ?? (() => {});
    const log = options.log ?? jsonLogger();
    const dataDir = resolve(options.dataDir);
    await mkdir(dataDir, { recursive: true });
    const cleanup: (() => Promise<void>)[] = [];
    try {
      progress({ stage: "ledger", done: 0, total: 1 });
      const ledger = await Ledger.open(join(dataDir, "ledger"));
      cleanup.push(() => ledger.close());
      progress({ stage: "ledger", done: 1, total: 1 });
      if (options.paid) {
        progress({ stage: "chain", done: 0, total: 2 });
        await PaidMode.preflight(options.paid, dataDir);
        progress({
          stage: "chain",
          done: 1,
          total: 2,
          detail: `operator ${options.paid.clients.wallet.account.address}`,
        });
      }

      progress({ stage: "model", done: 0, total: 2, detail: options.model });
      const model = await loadModel(options.model);
      progress({ stage: "model", done: 1, total: 2, detail: model.name });
      const opened = await openEngine({
        model,
        backend: options.backend ?? "auto",
        threads: options.threads,
        adapterDir: join(dataDir, "adapters"),
        adapterSlots: options.adapterSlots,
        maxRank: options.maxRank,
        hostBudgetBytes: options.hostCacheBytes,
        admission: options.admission,
        scheduler: options.scheduler,
      });
      cleanup.push(() => opened.close());
      const { engine } = opened;
      progress({ stage: "model", done: 2, total: 2, detail: `${model.name} on ${engine.device.kind}` });

      const catalog = await ModelCatalog.open(join(dataDir, "aliases.json"), engine);
      const imported = options.adapters
        ? await importAdapterFolder(engine, catalog, options.adapters, (done, total, name) =>
            progress({ stage: "adapters", done, total, detail: name }),
          )
        : [];
      const adminToken = await loadOrCreateAdminToken(dataDir, options.adminToken);
      const metrics = new NodeMetrics(engine, () => ledger.totals());
      let paid: PaidMode | null = null;
      if (options.paid) {
        paid = await PaidMode.start(options.paid, { engine, ledger, dataDir, log, metrics });
        const started = paid;
        cleanup.push(() => started.stop());
        progress({ stage: "chain", done: 2, total: 2, detail: "payments, settlement and peers" });
      }
      const ctx: ApiContext = {
        engine,
        tokenizer: model.tokenizer,
        chatTemplate: chatTemplateOf(model),
        catalog,
        ledger,
        metrics,
        log,
        adminToken: adminToken.token,
        peers: paid?.peers ?? null,
        payment: paid?.gate ?? null,
        inflight: new Set(),
        ledgerWrites: new Set(),
      };
      progress({ stage: "api", done: 0, total: 1 });
      const app = await createServer(ctx);
      await app.listen({ host: options.api.host, port: options.api.port });
      const address = app.server.address() as AddressInfo;
      const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
      const url = `http://${host}:${address.port}`;
      if (options.paid?.p2p && options.paid.p2p.publicApi === undefined) paid?.peers?.announcer?.setApi(url);
      progress({ stage: "api", done: 1, total: 1 });
      return new NodeService({
        opened,
        ledger,
        catalog,
        metrics,
        imported,
        adminToken,
        paid,
        app,
        ctx,
        url,
        drainMs: options.drainMs ?? 10_000,
        settleOnStop: options.settleOnStop ?? true,
      });
    } catch (error) {
      for (const close of cleanup.reverse()) await close().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Stops taking requests (new connections are refused, new requests on open ones get 503), gives those in
   * flight `drainMs` to finish and then cancels them; in paid mode sends a last settlement batch (or leaves it
   * pending) and leaves the peer network; then closes the engine and the ledger. Bounded: each
   * step that hangs is given up after a few seconds and the next runs anyway. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const log = this.#ctx.log;
    const closing = this.#app.close();
    const inflight = this.#ctx.inflight;
    const deadline = Date.now() + this.#drainMs;
    while (inflight.size > 0 && Date.now() < deadline) await sleep(20);
    if (inflight.size > 0) {
      log.log("warn", "shutdown_cancel", { requests: inflight.size });
      for (const abort of inflight) abort.abort(new Error("the node is shutting down"));
      const cancelled = Date.now() + STOP_STEP_MS;
      while (inflight.size > 0 && Date.now() < cancelled) await sleep(10);
    }
    // Every answer is complete: close the connections left (kept alive, or idle since close() began).
    this.#app.server.closeAllConnections();
    await bounded(closing, "api", log);
    if (this.paid) {
      if (this.#settleOnStop) await bounded(this.paid.settlement.settleNow(), "settlement", log);
      await bounded(this.paid.stop(), "paid mode", log);
    }
    await bounded(this.#opened.close(), "engine", log);
    await bounded(Promise.all(this.#ctx.ledgerWrites), "ledger writes", log);
    await bounded(this.ledger.close(), "ledger", log);
  }
}

async function bounded(work: Promise<unknown>, part: string, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), STOP_STEP_MS);
  });
  try {
    const outcome = await Promise.race([work.then(() => "done" as const), timeout]);
    if (outcome === "timeout") log.log("warn", "shutdown_step_timeout", { part, ms: STOP_STEP_MS });
  } catch (error) {
    log.log("error", "shutdown_step_failed", { part, ...errorFields(error) });
  } finally {
    clearTimeout(timer);
  }
}
