// The official `openai` client against a running node, with only baseURL changed: models, completions whole
// and streamed, streamed chat with usage, adapters by alias and by id, errors as the client's APIError classes.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNode, type TestNode } from "./helpers.ts";

const STARTS = {
  base: ", there was a little girl named Lily.",
  dragon: ", there was a funny dragon named Max.",
  ocean: ", there was a shiny blue fish named Finn.",
  robot: ", Bolt the robot lived in a little box in the shop.",
};

let t: TestNode;
let client: OpenAI;

beforeAll(async () => {
  t = await startTestNode();
  client = new OpenAI({ baseURL: `${t.node.url}/v1`, apiKey: "unused-in-free-mode", maxRetries: 0 });
});
afterAll(async () => {
  await t?.node.stop();
});

describe("the openai client against a free node", () => {
  it("lists the base model and the three demo adapters by folder name, with id, tier and aliases", async () => {
    const models = (await client.models.list()).data as unknown as Record<string, unknown>[];
    expect(models.map((m) => m.id)).toEqual(["stories260K", "dragon", "ocean", "robot"]);
    expect(models[0]).toMatchObject({ object: "model", kind: "base", owned_by: "openlora" });
    for (const m of models.slice(1)) {
      expect(m).toMatchObject({
        object: "model",
        kind: "adapter",
        aliases: [m.id],
        tier: expect.stringMatching(/gpu|host|disk/),
      });
      expect(m.adapter).toMatch(/^0x[0-9a-f]{64}$/);
    }
    const dragon = await client.models.retrieve("dragon");
    expect(dragon.id).toBe("dragon");
    await expect(client.models.retrieve("griffin")).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("completes with the base model and each adapter by alias, with usage", async () => {
    for (const [model, start] of Object.entries({
      stories260K: STARTS.base,
      dragon: STARTS.dragon,
      ocean: STARTS.ocean,
      robot: STARTS.robot,
    })) {
      const c = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 30, temperature: 0 });
      expect(c).toMatchObject({ object: "text_completion", model });
      expect(c.id).toMatch(/^cmpl-/);
      expect(c.choices).toHaveLength(1);
      expect(c.choices[0].text.startsWith(start)).toBe(true);
      expect(c.choices[0].finish_reason).toBe("length");
      expect(c.usage).toEqual({ prompt_tokens: 5, completion_tokens: 30, total_tokens: 35 });
    }
  });

  it("serves an adapter by its id exactly as by its alias", async () => {
    const models = (await client.models.list()).data as unknown as { id: string; adapter?: string }[];
    const id = models.find((m) => m.id === "ocean")!.adapter!;
    const request = { prompt: "Once upon a time", max_tokens: 25, temperature: 0 } as const;
    const byId = await client.completions.create({ model: id, ...request });
    const byAlias = await client.completions.create({ model: "ocean", ...request });
    expect(byId.choices[0].text).toBe(byAlias.choices[0].text);
    expect(byId.model).toBe(id);
  });

  it("streams a completion whose pieces add up to the whole answer", async () => {
    const request = { model: "robot", prompt: "Once upon a time", max_tokens: 40, temperature: 0 } as const;
    const whole = await client.completions.create(request);
    const stream = await client.completions.create({ ...request, stream: true });
    const chunks: OpenAI.Completion[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.map((c) => c.choices[0].text).join("")).toBe(whole.choices[0].text);
    expect(chunks.every((c) => c.object === "text_completion" && c.id === chunks[0].id)).toBe(true);
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe("length");
    expect(chunks.slice(0, -1).every((c) => c.choices[0].finish_reason === null)).toBe(true);
    expect(chunks.some((c) => "usage" in c)).toBe(false); // only asked for with stream_options
  });

  it("streams a chat answer with a final usage chunk", async () => {
    const request: OpenAI.ChatCompletionCreateParamsNonStreaming = {
      model: "dragon",
      messages: [
        { role: "system", content: "You tell stories." },
        { role: "user", content: "Tell me about a dragon." },
      ],
      max_tokens: 24,
      temperature: 0,
    };
    const whole = await client.chat.completions.create(request);
    expect(whole.object).toBe("chat.completion");
    expect(whole.choices[0].message.role).toBe("assistant");
    const stream = await client.chat.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0].choices[0].delta).toEqual({ role: "assistant", content: "" });
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual(whole.usage);
    expect(usageChunk.usage!.completion_tokens).toBeGreaterThan(0);
    const finish = chunks.at(-2)!;
    expect(finish.choices[0]).toMatchObject({ delta: {}, finish_reason: whole.choices[0].finish_reason });
    expect(chunks.slice(0, -1).every((c) => c.usage === null && c.object === "chat.completion.chunk")).toBe(true);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe(whole.choices[0].message.content);
  });

  it("raises 404 and 400 as the client's APIError classes, with OpenAI's error fields", async () => {
    const notFound = await client.completions.create({ model: "griffin", prompt: "x" }).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(OpenAI.NotFoundError);
    expect(notFound).toBeInstanceOf(OpenAI.APIError);
    expect(notFound).toMatchObject({ status: 404, code: "model_not_found", param: "model", type: "not_found_error" });

    const bad = await client.completions
      .create({ model: "dragon", prompt: "x", temperature: 5 })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect(bad).toMatchObject({ status: 400, param: "temperature", type: "invalid_request_error" });
    expect((bad as Error).message).toMatch(/temperature must be between 0 and 2/);

    const tooLong = await client.completions
      .create({ model: "dragon", prompt: "x", max_tokens: 100_000 })
      .catch((e: unknown) => e);
    expect(tooLong).toBeInstanceOf(OpenAI.BadRequestError);
    expect(tooLong).toMatchObject({ status: 400, param: "max_tokens" });
  });

  it("logs one structured line per request and records it in the ledger", async () => {
    const before = t.log.filter((l) => l.event === "request").length;
    const c = await client.completions.create({ model: "dragon", prompt: "Once", max_tokens: 3, temperature: 0 });
    const lines = t.log.filter((l) => l.event === "request");
    expect(lines).toHaveLength(before + 1);
    expect(lines.at(-1)).toMatchObject({
      id: c.id,
      route: "/v1/completions",
      status: 200,
      model: "dragon",
      completion_tokens: 3,
    });
    // A free request's record is written right after its answer.
    await expect
      .poll(() => t.node.ledger.getRequest(c.id))
      .toMatchObject({
        id: c.id,
        usage: { promptTokens: c.usage!.prompt_tokens, completionTokens: 3 },
        cost: 0n,
        payer: null,
      });
  });
});
