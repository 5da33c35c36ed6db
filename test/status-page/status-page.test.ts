// The status page of a real node (free mode, cpu backend, the three demo adapters) on 127.0.0.1: its JSON and
// assets over HTTP, then the page itself in Debian's chromium driven by playwright-core, after requests were
// served: the chart must have points with tokens, the tables the node's adapters. A screenshot is saved
// (OPENLORA_SCREENSHOT, default .cache/status-page.png). Without chromium (no root, no apt) the browser test
// is skipped, saying why.
import { mkdir, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "../../scripts/chromium.ts";
import { postJson, startTestNode, type TestNode } from "../api/helpers.ts";

const ROOT = join(import.meta.dirname, "../..");
const SCREENSHOT = process.env.OPENLORA_SCREENSHOT ?? join(ROOT, ".cache/status-page.png");
let t: TestNode;
let browser: Browser | null = null;
let noBrowser = "";

beforeAll(async () => {
  t = await startTestNode();
  // Requests for two adapters and the base model, so the page has tokens, tiers and slots to show.
  for (const model of ["dragon", "ocean", "stories260K", "dragon"]) {
    const answer = await postJson(t.node.url, "/v1/completions", { model, prompt: "Once upon a time", max_tokens: 48 });
    expect(answer.status, answer.body).toBe(200);
  }
  const launched = await launchChromium();
  if ("browser" in launched) browser = launched.browser;
  else noBrowser = launched.unavailable;
}, 660_000);

afterAll(async () => {
  await browser?.close();
  await t?.node.stop();
});

describe("status page over HTTP", () => {
  it("GET /v1/stats: tokens per second over time, adapters by tier, queue, KV, ledger", async () => {
    const response = await fetch(`${t.node.url}/v1/stats`);
    expect(response.status).toBe(200);
    const s = (await response.json()) as {
      node: { mode: string; model: string };
      throughput: { start: number; intervalMs: number; tokens: number[] };
      adapters: { id: string; aliases: string[]; tier: string }[];
      kv: { totalBlocks: number };
      ledger: { requests: number; completion_tokens: number; settlement: { amount_paid: string } };
    };
    expect(s.node).toMatchObject({ mode: "free", model: "stories260K" });
    const generated = s.throughput.tokens.reduce((a, b) => a + b, 0);
    // Every completion token was sampled in some step; a request that ends on EOS samples one token more.
    expect(generated).toBeGreaterThanOrEqual(s.ledger.completion_tokens);
    expect(generated).toBeLessThanOrEqual(s.ledger.completion_tokens + s.ledger.requests);
    expect(s.throughput.start + s.throughput.tokens.length * s.throughput.intervalMs).toBeGreaterThan(
      Date.now() - 1000,
    );
    expect(s.adapters.map((a) => a.aliases[0]).sort()).toEqual(["dragon", "ocean", "robot"]);
    expect(s.adapters.find((a) => a.aliases[0] === "dragon")?.tier).toBe("gpu");
    expect(s.ledger.requests).toBe(4);
    expect(s.ledger.settlement.amount_paid).toBe("0");
  });

  it("serves the page, its script and uPlot; nothing else under /status/", async () => {
    const page = await fetch(`${t.node.url}/`);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await page.text()).toContain('<figure id="throughput"');
    for (const asset of ["status.js", "status.css", "uplot.js", "uplot.css"]) {
      expect((await fetch(`${t.node.url}/status/${asset}`)).status, asset).toBe(200);
    }
    for (const path of ["/status/..%2Fthroughput.ts", "/status/index.html", "/status/"]) {
      expect((await fetch(`${t.node.url}${path}`)).status, path).toBe(404);
    }
  });
});

describe("status page in chromium", () => {
  it("draws the tokens/s chart with data points and lists the adapters; screenshot saved", async (ctx) => {
    if (!browser) return ctx.skip(noBrowser);
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${t.node.url}/`);
    await page.waitForFunction(() => Number(document.getElementById("throughput")?.dataset.nonzeroPoints) > 0);
    const chart = await page.$eval("#throughput", (figure) => ({
      points: Number((figure as HTMLElement).dataset.points),
      nonzero: Number((figure as HTMLElement).dataset.nonzeroPoints),
      tokens: Number((figure as HTMLElement).dataset.totalTokens),
      canvases: figure.querySelectorAll("canvas").length,
    }));
    const stats = (await (await fetch(`${t.node.url}/v1/stats`)).json()) as {
      throughput: { tokens: number[] };
    };
    expect(chart.canvases).toBeGreaterThan(0);
    expect(chart.points).toBeGreaterThanOrEqual(chart.nonzero);
    expect(chart.nonzero).toBeGreaterThan(0);
    expect(chart.tokens).toBe(stats.throughput.tokens.reduce((a, b) => a + b, 0));
    const aliases = await page.$$eval("#adapters tbody tr td:nth-child(2)", (cells) => cells.map((c) => c.textContent));
    expect(aliases.sort()).toEqual(["dragon", "ocean", "robot"]);
    expect(await page.textContent("#identity")).toContain("stories260K");
    expect(errors).toEqual([]);
    await mkdir(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect((await stat(SCREENSHOT)).size).toBeGreaterThan(10_000);
    await page.close();
  });
});
