// Server-Sent Events on the wire, and a client that goes away: its request is cancelled in the engine at once,
// recorded as cancelled, and logged with status 499. Stopping the node drains, then cancels what is left.
import { request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, sseData, startTestNode, type TestNode } from "./helpers.ts";

let t: TestNode;

beforeAll(async () => {
  t = await startTestNode();
});
afterAll(async () => {
  await t?.node.stop();
});

const long = { model: "ocean", prompt: "Once upon a time", max_tokens: 500, ignore_eos: true, temperature: 0 };

/** Starts a POST and resolves with the request and its response once the headers are in. */
function open(path: string, body: unknown): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${t.node.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
    });
    req.on("response", (res) => resolve({ req, res }));
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe("streaming", () => {
  it("writes OpenAI's SSE format: data events, usage: null until the usage chunk, then [DONE]", async () => {
    const res = await postJson(t.node.url, "/v1/completions", {
      ...long,
      max_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    expect(res.headers["x-request-id"]).toMatch(/^cmpl-/);
    expect(res.body.endsWith("data: [DONE]\n\n")).toBe(true);
    const events = sseData(res.body);
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Record<string, unknown>);
    for (const c of chunks) {
      expect(Object.keys(c)).toEqual(["id", "object", "created", "model", "system_fingerprint", "choices", "usage"]);
      expect(c).toMatchObject({ id: res.headers["x-request-id"], object: "text_completion", model: "ocean" });
    }
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 5, completion_tokens: 12, total_tokens: 17 },
    });
    expect(chunks.at(-2)).toMatchObject({ choices: [{ text: "", index: 0, logprobs: null, finish_reason: "length" }] });
  });

  it("cancels a streamed request in the engine as soon as its client disconnects", async () => {
    const finished = t.node.engine.once("request:finished", (e) => e.adapterId !== null);
    const { req, res } = await open("/v1/completions", { ...long, stream: true });
    const id = res.headers["x-request-id"] as string;
    await new Promise<void>((resolve) => res.once("data", () => resolve()));
    req.destroy(); // the client goes away mid-stream
    const { usage } = await finished;
    expect(usage.finishReason).toBe("cancelled");
    expect(usage.completionTokens).toBeLessThan(500);

    // Recorded and logged as cancelled (499: the client closed the request).
    await expect.poll(() => t.log.find((l) => l.id === id)).toMatchObject({ status: 499, finish_reason: "cancelled" });
    await expect
      .poll(() => t.node.ledger.getRequest(id))
      .toMatchObject({ finishReason: "cancelled", usage: { completionTokens: usage.completionTokens } });
  });

  it("cancels a whole (non-streamed) request when its client disconnects", async () => {
    const finished = t.node.engine.once("request:finished", (e) => e.adapterId !== null);
    let steps = 0;
    const started = new Promise<void>((resolve) => {
      const off = t.node.engine.on("step", () => {
        if (++steps < 3) return;
        off();
        resolve();
      });
    });
    const req = httpRequest(`${t.node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
    });
    req.on("error", () => {}); // the socket we destroy
    req.end(JSON.stringify(long));
    await started;
    req.destroy();
    const { usage } = await finished;
    expect(usage.finishReason).toBe("cancelled");
    expect(usage.completionTokens).toBeLessThan(500);
  });
});

describe("shutdown", () => {
  it("gives requests in flight the drain time, then cancels them with a shutting_down event and stops", async () => {
    const s = await startTestNode({ drainMs: 0 });
    const { res } = await new Promise<{ res: IncomingMessage }>((resolve, reject) => {
      const req = httpRequest(`${s.node.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
      });
      req.on("response", (r) => resolve({ res: r }));
      req.on("error", reject);
      req.end(JSON.stringify({ ...long, stream: true }));
    });
    const body = new Promise<string>((resolve) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString("utf8")));
      res.on("end", () => resolve(text));
    });
    await new Promise<void>((resolve) => res.once("data", () => resolve()));
    await s.node.stop();
    const events = sseData(await body);
    expect(events.at(-1)).not.toBe("[DONE]");
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { code: "shutting_down", type: "server_error" } });
    await expect(fetch(`${s.node.url}/health`)).rejects.toThrow();
  });
});
