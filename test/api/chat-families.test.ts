// /v1/chat/completions on models of the families people fine-tune: a node serving a Llama 3 GGUF and a Qwen3
// Hugging Face folder (random weights, test/engine/families) answers chats through the model's own template
// (tokenizer.chat_template, tokenizer_config.json) with a PEFT adapter, exactly as the engine does on its own:
// the same prompt tokens (one BOS for Llama 3, none for Qwen) and the same greedy reply.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, describe, expect, it } from "vitest";
import { writeRandomPeftAdapter } from "../../node/engine/adapter/random-adapter.ts";
import { loadModel } from "../../node/engine/formats/load-model.ts";
import { complete } from "../../node/engine/runtime/complete.ts";
import { openEngine } from "../../node/engine/runtime/open-engine.ts";
import { chatTemplateOf, type ChatMessage } from "../../node/engine/tokenizer/chat-template.ts";
import { familyFixture } from "../engine/families/fixtures.ts";
import { startTestNode, type TestNode } from "./helpers.ts";

const nodes: TestNode[] = [];
afterAll(async () => {
  for (const t of nodes) await t.node.stop();
});

const messages: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hello there" },
];

describe.each([
  ["llama3", "gguf"],
  ["qwen3", "hf"],
] as const)("%s (%s)", (preset, form) => {
  it("answers a chat through the model's template with an adapter, as the engine does", async () => {
    const fixture = familyFixture(preset);
    const modelPath = form === "gguf" ? fixture.gguf : fixture.hf;
    const model = await loadModel(modelPath);
    const adapters = join(fixture.hf, "..", "adapters");
    await mkdir(adapters, { recursive: true });
    await writeRandomPeftAdapter(join(adapters, "terse"), model.weights.config, {
      rank: 4,
      seed: 2,
      baseModel: model.name,
    });
    const t = await startTestNode({ model: modelPath, adapters });
    nodes.push(t);
    const client = new OpenAI({ baseURL: `${t.node.url}/v1`, apiKey: "unused-in-free-mode", maxRetries: 0 });
    const answer = await client.chat.completions.create({
      model: "terse",
      messages: messages as OpenAI.Chat.ChatCompletionMessageParam[],
      max_tokens: 8,
      temperature: 0,
    });

    const opened = await openEngine({ model, backend: "cpu", maxRank: 8 });
    try {
      const prompt = chatTemplateOf(model).render(messages);
      const adapterId = (await opened.engine.adapters.import(join(adapters, "terse"))).id;
      const expected = await complete(opened.engine, { prompt, maxTokens: 8, temperature: 0, adapterId });
      const bos = model.tokenizer.bosId;
      expect(expected.promptTokenIds.filter((id) => id === bos)).toHaveLength(preset === "llama3" ? 1 : 0);
      expect(answer.usage?.prompt_tokens).toBe(expected.promptTokenIds.length);
      expect(answer.choices[0].message.content).toBe(expected.text);
      expect(answer.usage?.completion_tokens).toBe(expected.tokenIds.length);
    } finally {
      await opened.close();
    }
  });
});
