// What the node tells anyone who asks: GET /health, GET /metrics (Prometheus), GET /v1/peers (the routing
// table learned from gossip), GET /v1/usage (hour buckets from the ledger).
import type { FastifyInstance } from "fastify";
import type { UsageBucket } from "../../ledger/index.ts";
import type { ApiContext } from "../context.ts";
import { badParam } from "../errors.ts";

const startedAt = Date.now();

export function statusRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get("/health", async () => {
    const stats = ctx.engine.stats();
    return {
      status: "ok",
      model: ctx.engine.model.name,
      device: ctx.engine.device,
      mode: ctx.payment ? "paid" : "free",
      adapters: stats.tiers.disk.adapters,
      queue: stats.queue,
      peers: ctx.peers ? ctx.peers.table.entries().length : null,
      uptime_s: Math.round((Date.now() - startedAt) / 1000),
    };
  });

  app.get("/metrics", async (_, reply) => {
    reply.header("content-type", "text/plain; version=0.0.4; charset=utf-8");
    return ctx.metrics.render();
  });

  app.get("/v1/peers", async () => ({
    object: "list",
    self: ctx.peers?.peerId ?? null,
    data: (ctx.peers?.table.entries() ?? []).map((e) => ({
      peer_id: e.peerId,
      local: e.local,
      received_at: new Date(e.receivedAt).toISOString(),
      expires_at: new Date(e.expiresAt).toISOString(),
      announcement: e.announcement,
    })),
  }));

  app.get<{ Querystring: Record<string, string | string[] | undefined> }>("/v1/usage", async (request) => {
    const q = request.query;
    for (const key of Object.keys(q))
      if (!["adapter", "from", "to"].includes(key)) throw badParam(key, "is not a usage filter (adapter, from, to)");
    const from = timeParam(q.from, "from");
    const to = timeParam(q.to, "to");
    if (from !== undefined && to !== undefined && to <= from) throw badParam("to", "must be after from");
    const adapter = adapterParam(ctx, q.adapter);
    await Promise.all(ctx.ledgerWrites);
    const buckets = await ctx.ledger.usage({ adapter, from, to });
    const total = { requests: 0, prompt_tokens: 0, completion_tokens: 0, cost: 0n };
    for (const b of buckets) {
      total.requests += b.requests;
      total.prompt_tokens += b.promptTokens;
      total.completion_tokens += b.completionTokens;
      total.cost += b.cost;
    }
    return { object: "list", data: buckets.map(bucketJson), total: { ...total, cost: total.cost.toString() } };
  });
}

function bucketJson(b: UsageBucket) {
  return {
    adapter: b.adapter,
    hour_start: new Date(b.hourStart).toISOString(),
    requests: b.requests,
    prompt_tokens: b.promptTokens,
    completion_tokens: b.completionTokens,
    cost: b.cost.toString(),
  };
}

/** A time as ms since 1970 or an ISO 8601 date. */
function timeParam(value: string | string[] | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  if (Array.isArray(value)) throw badParam(name, "is given twice");
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms) || ms < 0)
    throw badParam(name, `must be ms since 1970 or an ISO 8601 date, got ${JSON.stringify(value)}`);
  return ms;
}

/** Absent: every adapter; the base model's name or "base": the base model; else an adapter id or alias. */
function adapterParam(ctx: ApiContext, value: string | string[] | undefined): `0x${string}` | null | undefined {
  if (value === undefined || value === "") return undefined;
  if (Array.isArray(value)) throw badParam("adapter", "is given twice");
  if (value === "base") return null;
  return ctx.catalog.require(value, "adapter").adapterId;
}
