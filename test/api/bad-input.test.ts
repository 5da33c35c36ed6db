// Bad HTTP input of every kind gets its status and OpenAI's error shape while another stream keeps flowing, and
// the node goes on serving.
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, rawRequest, sseData, startTestNode, type RawResponse, type TestNode } from "./helpers.ts";

let t: TestNode;
let base: string;

beforeAll(async () => {
  t = await startTestNode();
  base = t.node.url;
});
afterAll(async () => {
  await t?.node.stop();
});

/** The status and the error object, checked to be OpenAI's shape. */
function openAiError(res: RawResponse): { status: number; error: Record<string, unknown> } {
  const body = JSON.parse(res.body) as { error: Record<string, unknown> };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
  expect(body.error).toHaveProperty("param");
  expect(body.error).toHaveProperty("code");
  return { status: res.status, error: body.error };
}

const completion = { model: "dragon", prompt: "Once upon a time", max_tokens: 8, temperature: 0 };
const chat = { model: "dragon", messages: [{ role: "user", content: "Hi" }], max_tokens: 4 };

/** [what, request, expected status, expected param (undefined: not checked)] */
type Case = [string, () => Promise<RawResponse>, number, string | null | undefined];
const post =
  (body: unknown, path = "/v1/completions") =>
  () =>
    postJson(base, path, body);
const CASES: Case[] = [
  ["invalid JSON", post("{ not json"), 400, null],
  ["empty JSON body", post(""), 400, null],
  ["a JSON array body", post([1, 2]), 400, "body"],
  ["no model", post({ prompt: "x" }), 400, "model"],
  ["model not a string", post({ ...completion, model: 7 }), 400, "model"],
  ["no prompt", post({ model: "dragon" }), 400, "prompt"],
  ["prompt an object", post({ ...completion, prompt: { a: 1 } }), 400, "prompt"],
  ["two prompts", post({ ...completion, prompt: ["a", "b"] }), 400, "prompt"],
  ["a token id outside the vocabulary", post({ ...completion, prompt: [1, 99999] }), 400, "prompt"],
  ["a prompt over the node's bytes bound", post({ ...completion, prompt: "a".repeat(20_000) }), 400, "prompt"],
  [
    "a 6 KiB prompt (tokenized in slices) over the context",
    post({ ...completion, prompt: "Once upon a time ".repeat(380) }),
    400,
    "prompt",
  ],
  [
    "chat messages over the bytes bound",
    post({ ...chat, messages: [{ role: "user", content: "a".repeat(20_000) }] }, "/v1/chat/completions"),
    400,
    "messages",
  ],
  ["temperature a string", post({ ...completion, temperature: "hot" }), 400, "temperature"],
  ["temperature out of range", post({ ...completion, temperature: -1 }), 400, "temperature"],
  ["top_p out of range", post({ ...completion, top_p: 1.5 }), 400, "top_p"],
  ["max_tokens negative", post({ ...completion, max_tokens: -1 }), 400, "max_tokens"],
  ["max_tokens fractional", post({ ...completion, max_tokens: 2.5 }), 400, "max_tokens"],
  ["max_tokens over the context", post({ ...completion, max_tokens: 600 }), 400, "max_tokens"],
  ["seed out of range", post({ ...completion, seed: -3 }), 400, "seed"],
  ["five stop strings", post({ ...completion, stop: ["a", "b", "c", "d", "e"] }), 400, "stop"],
  ["stop not strings", post({ ...completion, stop: [1] }), 400, "stop"],
  ["n = 2", post({ ...completion, n: 2 }), 400, "n"],
  ["logprobs", post({ ...completion, logprobs: 2 }), 400, "logprobs"],
  ["echo", post({ ...completion, echo: true }), 400, "echo"],
  ["best_of = 3", post({ ...completion, best_of: 3 }), 400, "best_of"],
  ["a penalty", post({ ...completion, presence_penalty: 0.5 }), 400, "presence_penalty"],
  ["an unknown field", post({ ...completion, temprature: 0 }), 400, "temprature"],
  ["stream not a boolean", post({ ...completion, stream: "yes" }), 400, "stream"],
  [
    "stream_options without stream",
    post({ ...completion, stream_options: { include_usage: true } }),
    400,
    "stream_options",
  ],
  ["unknown model", post({ ...completion, model: "griffin" }), 404, "model"],
  ["unknown adapter id", post({ ...completion, model: `0x${"ab".repeat(32)}` }), 404, "model"],
  ["chat without messages", post({ model: "dragon" }, "/v1/chat/completions"), 400, "messages"],
  ["chat with empty messages", post({ ...chat, messages: [] }, "/v1/chat/completions"), 400, "messages"],
  [
    "chat with a bad role",
    post({ ...chat, messages: [{ role: "wizard", content: "x" }] }, "/v1/chat/completions"),
    400,
    "messages[0].role",
  ],
  [
    "chat without content",
    post({ ...chat, messages: [{ role: "user" }] }, "/v1/chat/completions"),
    400,
    "messages[0].content",
  ],
  [
    "chat with an image part",
    post(
      { ...chat, messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] },
      "/v1/chat/completions",
    ),
    400,
    "messages[0].content[0].type",
  ],
  [
    "chat with tools",
    post({ ...chat, tools: [{ type: "function", function: { name: "f" } }] }, "/v1/chat/completions"),
    400,
    "tools",
  ],
  ["chat with logprobs", post({ ...chat, logprobs: true }, "/v1/chat/completions"), 400, "logprobs"],
  ["an unknown URL", () => rawRequest(base, "GET", "/v1/engines"), 404, null],
  ["GET on a POST route", () => rawRequest(base, "GET", "/v1/completions"), 405, null],
  ["DELETE on a GET route", () => rawRequest(base, "DELETE", "/v1/models"), 405, null],
  ["a body over 1 MiB", post({ ...completion, prompt: "a".repeat(1024 * 1024) }), 413, null],
  [
    "a text/plain body",
    () => rawRequest(base, "POST", "/v1/completions", { headers: { "content-type": "text/plain" }, body: "hello" }),
    415,
    null,
  ],
  ["admin route without a token", post({ path: "/tmp" }, "/v1/adapters"), 401, null],
  [
    "admin route with a wrong token",
    () => postJson(base, "/v1/adapters", { path: "/tmp" }, { authorization: "Bearer wrong-token-wrong-token" }),
    401,
    null,
  ],
  ["usage with a bad date", () => rawRequest(base, "GET", "/v1/usage?from=yesterday"), 400, "from"],
  ["usage of an unknown adapter", () => rawRequest(base, "GET", "/v1/usage?adapter=griffin"), 404, "adapter"],
];

/** Sends raw bytes on a fresh connection; resolves with what came back before the server closed it. */
function rawSocket(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const socket = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    socket.on("error", reject);
    socket.write(bytes);
  });
}

describe("bad HTTP input", () => {
  it("gets the right status and OpenAI's error shape while a stream keeps flowing", async () => {
    const reference = await postJson(base, "/v1/completions", { ...completion, max_tokens: 300, ignore_eos: true });
    const expectedText = (JSON.parse(reference.body) as { choices: { text: string }[] }).choices[0].text;

    // A long stream whose body we read only after all the bad requests: the server holds it open meanwhile.
    const streaming = postJson(base, "/v1/completions", {
      ...completion,
      max_tokens: 300,
      ignore_eos: true,
      stream: true,
    });

    for (const [what, send, status, param] of CASES) {
      const res = await send();
      const { error } = openAiError(res);
      expect({ what, status: res.status }).toEqual({ what, status });
      if (param !== undefined) expect({ what, param: error.param }).toEqual({ what, param });
      if (status === 405) expect(res.headers.allow).toMatch(/GET|POST/);
    }

    const garbage = await rawSocket("THIS IS NOT HTTP\r\n\r\n");
    expect(garbage).toMatch(/^HTTP\/1\.1 400 Bad Request/);
    expect(JSON.parse(garbage.split("\r\n\r\n")[1])).toMatchObject({
      error: { code: "bad_http", type: "invalid_request_error" },
    });
    const hugeHeader = await rawSocket(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(40_000)}\r\n\r\n`);
    expect(hugeHeader).toMatch(/^HTTP\/1\.1 431/);

    const streamed = await streaming;
    expect(streamed.status).toBe(200);
    const events = sseData(streamed.body);
    expect(events.at(-1)).toBe("[DONE]");
    const text = events
      .slice(0, -1)
      .map((e) => (JSON.parse(e) as { choices: { text: string }[] }).choices[0].text)
      .join("");
    expect(text).toBe(expectedText);

    // And the node still serves.
    const after = await postJson(base, "/v1/completions", completion);
    expect(after.status).toBe(200);
    expect((await rawRequest(base, "GET", "/health")).status).toBe(200);
  });

  it("answers every error with a JSON content type and keeps keep-alive connections usable", async () => {
    const res = await postJson(base, "/v1/completions", { model: "dragon" });
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    const ok = await postJson(base, "/v1/completions", completion);
    expect(ok.status).toBe(200);
  });
});
