// The operator's routes (adapters in and out, behind the admin token) and what the node reports: health, usage
// from the ledger, Prometheus metrics.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeRandomPeftAdapter } from "../../node/engine/adapter/random-adapter.ts";
import { stories } from "../helpers/stories.ts";
import { postJson, rawRequest, startTestNode, type TestNode } from "./helpers.ts";

let t: TestNode;
let admin: Record<string, string>;

beforeAll(async () => {
  t = await startTestNode();
  admin = { authorization: `Bearer ${t.node.adminToken.token}` };
});
afterAll(async () => {
  await t?.node.stop();
});

const json = (body: string) => JSON.parse(body) as Record<string, unknown>;
const models = async () =>
  (json((await rawRequest(t.node.url, "GET", "/v1/models")).body).data as { id: string; adapter?: string }[]).map(
    (m) => m.id,
  );

describe("admin routes", () => {
  it("imports a PEFT folder under a name, serves it by that name, and removes it", async () => {
    const model = await stories();
    const dir = join(await mkdtemp(join(tmpdir(), "openlora-admin-")), "fresh");
    await writeRandomPeftAdapter(dir, model.weights.config, { rank: 4, seed: 7, baseModel: model.name });

    const created = await postJson(t.node.url, "/v1/adapters", { path: dir, alias: "griffin" }, admin);
    expect(created.status).toBe(201);
    const entry = json(created.body);
    expect(entry).toMatchObject({ id: "griffin", kind: "adapter", aliases: ["griffin"] });
    expect(entry.adapter).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await models()).toContain("griffin");

    const again = await postJson(t.node.url, "/v1/adapters", { path: dir }, admin);
    expect(again.status).toBe(200); // already registered: nothing new
    const taken = await postJson(t.node.url, "/v1/adapters", { id: entry.adapter, alias: "dragon" }, admin);
    expect(taken.status).toBe(409);
    expect(json(taken.body)).toMatchObject({ error: { code: "alias_taken", param: "alias" } });

    const answer = await postJson(t.node.url, "/v1/completions", { model: "griffin", prompt: "Once", max_tokens: 4 });
    expect(answer.status).toBe(200);

    const removed = await rawRequest(t.node.url, "DELETE", "/v1/adapters/griffin", { headers: admin });
    expect(removed.status).toBe(200);
    expect(json(removed.body)).toEqual({ id: entry.adapter, object: "adapter", deleted: true });
    expect(await models()).not.toContain("griffin");
    const gone = await postJson(t.node.url, "/v1/completions", { model: "griffin", prompt: "Once", max_tokens: 4 });
    expect(gone.status).toBe(404);
  });

  it("refuses what it cannot do, by name", async () => {
    const cases: [string, () => Promise<{ status: number; body: string }>, number, string][] = [
      ["no path nor id", () => postJson(t.node.url, "/v1/adapters", {}, admin), 400, "invalid_request"],
      [
        "a folder that is no adapter",
        () => postJson(t.node.url, "/v1/adapters", { path: tmpdir() }, admin),
        400,
        "adapter_invalid",
      ],
      [
        "fetch by id without a network",
        () => postJson(t.node.url, "/v1/adapters", { id: `0x${"cd".repeat(32)}` }, admin),
        409,
        "no_peer_network",
      ],
      [
        "removing the base model",
        () => rawRequest(t.node.url, "DELETE", "/v1/adapters/stories260K", { headers: admin }),
        400,
        "invalid_request",
      ],
      [
        "removing an unknown adapter",
        () => rawRequest(t.node.url, "DELETE", "/v1/adapters/griffin2", { headers: admin }),
        404,
        "model_not_found",
      ],
      [
        "removing without the token",
        () => rawRequest(t.node.url, "DELETE", "/v1/adapters/dragon"),
        401,
        "invalid_admin_token",
      ],
    ];
    for (const [what, send, status, code] of cases) {
      const res = await send();
      expect({ what, status: res.status, code: (json(res.body).error as { code: string }).code }).toEqual({
        what,
        status,
        code,
      });
    }
    expect(await models()).toContain("dragon");
  });
});

describe("status routes", () => {
  it("reports health, usage by adapter and time, and Prometheus metrics", async () => {
    const health = json((await rawRequest(t.node.url, "GET", "/health")).body);
    expect(health).toMatchObject({
      status: "ok",
      model: "stories260K",
      mode: "free",
      peers: null,
      device: { kind: "cpu" },
    });

    const before = Date.now();
    for (const model of ["ocean", "ocean", "stories260K"]) {
      expect((await postJson(t.node.url, "/v1/completions", { model, prompt: "Once", max_tokens: 3 })).status).toBe(
        200,
      );
    }
    const usage = json((await rawRequest(t.node.url, "GET", `/v1/usage?adapter=ocean&from=${before}`)).body);
    const buckets = usage.data as { adapter: string; requests: number; completion_tokens: number; cost: string }[];
    expect(buckets.reduce((n, b) => n + b.requests, 0)).toBe(2);
    expect(usage.total).toMatchObject({ requests: 2, completion_tokens: 6, cost: "0" });
    const base = json(
      (await rawRequest(t.node.url, "GET", `/v1/usage?adapter=base&from=${new Date(before).toISOString()}`)).body,
    );
    expect((base.total as { requests: number }).requests).toBeGreaterThanOrEqual(1);
    const future = json((await rawRequest(t.node.url, "GET", `/v1/usage?from=${Date.now() + 7_200_000}`)).body);
    expect(future.data).toEqual([]);

    const metrics = await rawRequest(t.node.url, "GET", "/metrics");
    expect(metrics.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of [
      "openlora_tokens_per_second",
      "openlora_queue_requests",
      "openlora_kv_blocks",
      "openlora_adapter_slots",
      "openlora_adapter_lookups_total",
      "openlora_adapter_loads_total",
      "openlora_request_duration_seconds_bucket",
      "openlora_time_to_first_token_seconds_count",
      "openlora_settlement_paid_wei",
      "openlora_settlement_gas_used",
    ]) {
      expect(metrics.body).toMatch(new RegExp(`^${name}[{ ]`, "m"));
    }
    const ok = /^openlora_http_requests_total\{route="\/v1\/completions",status="200"\} (\d+)$/m.exec(metrics.body);
    expect(Number(ok?.[1])).toBeGreaterThanOrEqual(3);
    // Every sample line is "name{labels} value" or "name value".
    for (const line of metrics.body
      .trim()
      .split("\n")
      .filter((l) => !l.startsWith("#"))) {
      expect(line).toMatch(/^[a-z_]+(\{[^}]*\})? -?[0-9.e+]+$|^[a-z_]+(\{[^}]*\})? \+Inf$/);
    }
  });
});
