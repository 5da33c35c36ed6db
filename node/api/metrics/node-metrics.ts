// The node's metrics: engine events (steps, adapter loads and evictions, finished requests) and API outcomes are
// counted as they happen; queue, KV, slots, tiers and the ledger's totals are read when Prometheus scrapes.
import type { Engine } from "../../engine/index.ts";
import type { LedgerTotals } from "../../ledger/index.ts";
import { MetricsRegistry } from "./prometheus.ts";

const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096];
const GAS_BUCKETS = [50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000];

export class NodeMetrics {
  readonly registry = new MetricsRegistry();
  readonly #engine: Engine;
  readonly #totals: () => Promise<LedgerTotals>;
  /** Adapters in a GPU slot, followed through the engine's events (a lookup is then O(1)). */
  readonly #inSlot = new Set<string>();
  readonly #r = this.registry;
  readonly #requests = this.#r.counter("openlora_http_requests_total", "HTTP requests by route and status");
  readonly #latency = this.#r.histogram(
    "openlora_request_duration_seconds",
    "Inference request time, arrival to last byte",
  );
  readonly #ttft = this.#r.histogram("openlora_time_to_first_token_seconds", "Engine time from submit to first token");
  readonly #queue = this.#r.histogram("openlora_queue_wait_seconds", "Engine time from submit to first admission");
  readonly #completion = this.#r.histogram("openlora_completion_tokens", "Generated tokens per request", TOKEN_BUCKETS);
  readonly #finished = this.#r.counter("openlora_engine_requests_total", "Engine requests by how they ended");
  readonly #tokens = this.#r.counter("openlora_tokens_total", "Tokens by kind (prompt, completion)");
  readonly #steps = this.#r.histogram("openlora_step_duration_seconds", "Backend time of one forward step");
  readonly #lookups = this.#r.counter(
    "openlora_adapter_lookups_total",
    'Requests for an adapter by where it was: tier "gpu" is a slot hit, "host" a slot miss that hit host memory, "disk" a miss of both',
  );
  readonly #loads = this.#r.counter("openlora_adapter_loads_total", "Adapter loads into GPU slots by result");
  readonly #loadTime = this.#r.histogram("openlora_adapter_load_seconds", "Adapter load time into a slot");
  readonly #evictions = this.#r.counter("openlora_adapter_evictions_total", "Adapters evicted, by tier left");
  readonly #tokensPerSecond = this.#r.gauge("openlora_tokens_per_second", "Generated tokens per second (5 s window)");
  readonly #queueDepth = this.#r.gauge(
    "openlora_queue_requests",
    "Engine requests by state (waiting, running, waiting_for_adapter)",
  );
  readonly #kv = this.#r.gauge("openlora_kv_blocks", "KV cache blocks (total, free)");
  readonly #slots = this.#r.gauge("openlora_adapter_slots", "GPU adapter slots by state (empty, loading, ready)");
  readonly #tierAdapters = this.#r.gauge("openlora_adapter_tier_adapters", "Adapters held per tier");
  readonly #tierBytes = this.#r.gauge("openlora_adapter_tier_bytes", "Bytes held per tier (host: budget too)");
  readonly #settleBatches = this.#r.gauge("openlora_settlement_batches", "Settlement batches by status (ledger)");
  readonly #settleVouchers = this.#r.gauge("openlora_settlement_vouchers", "Settled vouchers by outcome (ledger)");
  readonly #settlePaid = this.#r.gauge("openlora_settlement_paid_wei", "Wei paid to this node's channels (ledger)");
  readonly #settleGas = this.#r.gauge("openlora_settlement_gas_used", "Gas spent on settlement batches (ledger)");
  readonly #batchGas = this.#r.histogram("openlora_settlement_batch_gas", "Gas of one settlement batch", GAS_BUCKETS);
  readonly #earned = this.#r.gauge("openlora_requests_cost_wei", "Cost of all recorded requests (ledger)");

  constructor(engine: Engine, ledgerTotals: () => Promise<LedgerTotals>) {
    this.#engine = engine;
    this.#totals = ledgerTotals;
    for (const a of engine.adapters.list()) if (a.tier === "gpu") this.#inSlot.add(a.id);
    engine.on("adapter:loaded", ({ id, ms }) => {
      this.#inSlot.add(id);
      this.#loads.inc({ result: "ok" });
      this.#loadTime.observe(ms / 1000);
    });
    engine.on("adapter:load-failed", () => this.#loads.inc({ result: "failed" }));
    engine.on("adapter:evicted", ({ id, from }) => {
      if (from === "gpu") this.#inSlot.delete(id);
      this.#evictions.inc({ from });
    });
    engine.on("adapter:removed", ({ id }) => this.#inSlot.delete(id));
    engine.on("step", ({ ms }) => this.#steps.observe(ms / 1000));
    engine.on("request:finished", ({ usage }) => {
      this.#finished.inc({ finish_reason: usage.finishReason });
      this.#tokens.inc({ kind: "prompt" }, usage.promptTokens);
      this.#tokens.inc({ kind: "completion" }, usage.completionTokens);
      this.#completion.observe(usage.completionTokens);
      this.#queue.observe(usage.timings.queueMs / 1000);
      if (usage.completionTokens > 0) this.#ttft.observe(usage.timings.ttftMs / 1000);
    });
  }

  /** A request names an adapter: counts a slot hit, or a miss by the tier that has it. */
  adapterLookup(id: string): void {
    if (this.#inSlot.has(id)) return this.#lookups.inc({ tier: "gpu" });
    // A miss is followed by a load that costs far more than this scan of the listing.
    const tier = this.#engine.adapters.list().find((a) => a.id === id)?.tier ?? "disk";
    this.#lookups.inc({ tier: tier === "gpu" ? "host" : tier });
  }

  /** An HTTP request answered; inference routes add their whole duration. */
  request(route: string, status: number, seconds?: number): void {
    this.#requests.inc({ route, status: String(status) });
    if (seconds !== undefined) this.#latency.observe(seconds, { route });
  }

  settlementBatch(gasUsed: bigint): void {
    this.#batchGas.observe(Number(gasUsed));
  }

  /** The exposition, with the gauges read now. */
  async render(): Promise<string> {
    const s = this.#engine.stats();
    this.#tokensPerSecond.set(s.tokens.perSecond);
    this.#queueDepth.set(s.queue.waiting, { state: "waiting" });
    this.#queueDepth.set(s.queue.running, { state: "running" });
    this.#queueDepth.set(s.queue.waitingForAdapter, { state: "waiting_for_adapter" });
    this.#kv.set(s.kv.totalBlocks, { state: "total" });
    this.#kv.set(s.kv.freeBlocks, { state: "free" });
    for (const state of ["empty", "loading", "ready"] as const) {
      this.#slots.set(s.slots.filter((slot) => slot.state === state).length, { state });
    }
    this.#tierAdapters.set(s.tiers.gpu.adapters, { tier: "gpu" });
    this.#tierAdapters.set(s.tiers.host.adapters, { tier: "host" });
    this.#tierAdapters.set(s.tiers.disk.adapters, { tier: "disk" });
    this.#tierBytes.set(s.tiers.host.bytes, { tier: "host" });
    this.#tierBytes.set(s.tiers.host.budgetBytes, { tier: "host_budget" });
    this.#tierBytes.set(s.tiers.disk.bytes, { tier: "disk" });
    const t = await this.#totals();
    const st = t.settlement;
    this.#settleBatches.set(st.batchesConfirmed, { status: "confirmed" });
    this.#settleBatches.set(st.batchesFailed, { status: "failed" });
    this.#settleVouchers.set(st.vouchersPaid, { outcome: "paid" });
    this.#settleVouchers.set(st.vouchersSkipped, { outcome: "skipped" });
    this.#settlePaid.set(st.amountPaid);
    this.#settleGas.set(st.gasUsed);
    this.#earned.set(t.all.cost);
    return this.registry.render();
  }
}
