// The status page: GET / (HTML), GET /status/<asset> (its script and style, and uPlot from node_modules: no build
// step), and GET /v1/stats, the one JSON document the page polls: the engine (queue, KV, slots, adapter tiers),
// tokens per second over the last minutes, peers from gossip, and the ledger's requests, earnings and settlements.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { ApiContext } from "../context.ts";
import { ApiError } from "../errors.ts";
import { ThroughputHistory } from "../status-page/throughput.ts";

const require = createRequire(import.meta.url);
const PAGE_DIR = join(import.meta.dirname, "../status-page");

/** The files the page loads, by URL name: path and content type. Nothing else is served from disk. */
const ASSETS: Record<string, { path: string; type: string }> = {
  "status.js": { path: join(PAGE_DIR, "status.js"), type: "text/javascript; charset=utf-8" },
  "status.css": { path: join(PAGE_DIR, "status.css"), type: "text/css; charset=utf-8" },
  "uplot.js": { path: require.resolve("uplot/dist/uPlot.iife.min.js"), type: "text/javascript; charset=utf-8" },
  "uplot.css": { path: require.resolve("uplot/dist/uPlot.min.css"), type: "text/css; charset=utf-8" },
};

const startedAt = Date.now();

export function statusPageRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const history = new ThroughputHistory(ctx.engine);
  app.addHook("onClose", async () => history.close());
  // Read once, on first use: the files are part of the code and do not change while the node runs.
  const files = new Map<string, Promise<Buffer>>();
  const file = (path: string): Promise<Buffer> => {
    let content = files.get(path);
    if (!content) files.set(path, (content = readFile(path)));
    return content;
  };

  app.get("/", async (_, reply) => {
    reply.header("content-type", "text/html; charset=utf-8").header("cache-control", "no-cache");
    return file(join(PAGE_DIR, "index.html"));
  });

  app.get<{ Params: { asset: string } }>("/status/:asset", async (request, reply) => {
    const asset = ASSETS[request.params.asset];
    if (!asset) throw new ApiError(404, "unknown_url", `no status page asset ${JSON.stringify(request.params.asset)}`);
    reply.header("content-type", asset.type).header("cache-control", "max-age=300");
    return file(asset.path);
  });

  app.get("/v1/stats", async () => stats(ctx, history));
}

async function stats(ctx: ApiContext, history: ThroughputHistory) {
  const s = ctx.engine.stats();
  const totals = await ctx.ledger.totals();
  const st = totals.settlement;
  return {
    node: {
      model: ctx.engine.model.name,
      device: ctx.engine.device,
      mode: ctx.payment ? "paid" : "free",
      peer_id: ctx.peers?.peerId ?? null,
      uptime_s: Math.round((Date.now() - startedAt) / 1000),
    },
    queue: s.queue,
    kv: s.kv,
    slots: s.slots,
    tiers: s.tiers,
    tokens: s.tokens,
    completed: s.completed,
    adapters: ctx.engine.adapters
      .list()
      .map((a) => ({ id: a.id, aliases: ctx.catalog.aliasesOf(a.id), tier: a.tier, bytes: a.bytes })),
    peers: (ctx.peers?.table.entries() ?? []).map((e) => ({
      peer_id: e.peerId,
      local: e.local,
      operator: e.announcement.operator,
      api: e.announcement.api,
      adapters: e.announcement.adapters.map((a) => ({ id: a.id, tier: a.tier })),
      queue_depth: e.announcement.queueDepth,
      free_slots: e.announcement.freeSlots,
      price_per_token: e.announcement.pricePerToken.toString(),
      expires_in_s: Math.max(0, Math.round((e.expiresAt - Date.now()) / 1000)),
    })),
    ledger: {
      requests: totals.all.requests,
      prompt_tokens: totals.all.promptTokens,
      completion_tokens: totals.all.completionTokens,
      earned: totals.all.cost.toString(),
      adapters: Object.entries(totals.adapters).map(([adapter, u]) => ({
        adapter,
        requests: u.requests,
        prompt_tokens: u.promptTokens,
        completion_tokens: u.completionTokens,
        earned: u.cost.toString(),
      })),
      settlement: {
        batches_confirmed: st.batchesConfirmed,
        batches_failed: st.batchesFailed,
        vouchers_paid: st.vouchersPaid,
        vouchers_skipped: st.vouchersSkipped,
        amount_paid: st.amountPaid.toString(),
        gas_used: st.gasUsed.toString(),
      },
    },
    throughput: history.series(),
  };
}
