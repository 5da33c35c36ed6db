// Chat templates: the model's own (Hugging Face tokenizer_config.json, GGUF metadata) rendered with Jinja, and the
// documented plain template for models without one.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  chatTemplateOf,
  InvalidRequestError,
  jinjaChatTemplate,
  ModelFormatError,
  PLAIN_CHAT_TEMPLATE,
} from "../../node/engine/index.ts";
import { GGUF_TYPE } from "../../node/engine/formats/gguf-types.ts";
import { writeGguf } from "../../node/engine/formats/gguf-write.ts";
import { stories } from "../helpers/stories.ts";

// Qwen2.5's ChatML template, as its tokenizer_config.json ships it (tools branch trimmed).
const CHATML =
  "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}" +
  "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
// Llama 2 chat's template: a BOS in front of each turn, and raise_exception for turns that do not alternate.
const LLAMA2 =
  "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'].strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

describe("chat templates", () => {
  it("the plain template renders turns as documented and stops before the next user turn", () => {
    const prompt = PLAIN_CHAT_TEMPLATE.render([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello." },
      { role: "user", content: "Tell a story" },
    ]);
    expect(prompt).toBe("Be brief.\n\nUser: Hi\n\nAssistant: Hello.\n\nUser: Tell a story\n\nAssistant:");
    expect(PLAIN_CHAT_TEMPLATE.stop).toEqual(["\nUser:"]);
  });

  it("stories260K has no template of its own: the plain one", async () => {
    const template = chatTemplateOf(await stories());
    expect(template.kind).toBe("plain");
  });

  it("renders a model's Jinja template with the generation prompt, without a leading BOS the engine adds", () => {
    const chatml = jinjaChatTemplate(CHATML, { bosToken: "", eosToken: "<|im_end|>" }, "test");
    expect(chatml.render([{ role: "user", content: "Hi" }])).toBe(
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    );
    const llama = jinjaChatTemplate(LLAMA2, { bosToken: "<s>", eosToken: "</s>" }, "test");
    const prompt = llama.render([
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello" },
      { role: "user", content: "More" },
    ]);
    expect(prompt).toBe("[INST] Hi [/INST] Hello </s><s>[INST] More [/INST]");
  });

  it("a conversation the template refuses is the caller's error, naming the template's reason", () => {
    const llama = jinjaChatTemplate(LLAMA2, { bosToken: "<s>", eosToken: "</s>" }, "test");
    const refuse = () => llama.render([{ role: "assistant", content: "first" }]);
    expect(refuse).toThrow(InvalidRequestError);
    expect(refuse).toThrow(/roles must alternate/);
  });

  it("reads chat_template from tokenizer_config.json (a string or a list with a default) and GGUF metadata", async () => {
    const dir = await mkdtemp(join(tmpdir(), "openlora-chat-"));
    const hf = (config: unknown) => writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(config));
    const messages = [{ role: "user", content: "Hi" }] as const;

    await hf({ chat_template: CHATML, bos_token: "<s>", eos_token: { content: "<|im_end|>" } });
    expect(chatTemplateOf({ format: "safetensors", source: dir }).render(messages)).toMatch(/^<\|im_start\|>user/);
    await hf({
      chat_template: [
        { name: "tool_use", template: "x" },
        { name: "default", template: CHATML },
      ],
    });
    expect(chatTemplateOf({ format: "safetensors", source: dir }).kind).toBe("model");
    await hf({ bos_token: "<s>" });
    expect(chatTemplateOf({ format: "safetensors", source: dir }).kind).toBe("plain");
    await hf({ chat_template: "{% for %}" });
    expect(() => chatTemplateOf({ format: "safetensors", source: dir })).toThrow(ModelFormatError);

    const gguf = join(dir, "chat.gguf");
    writeGguf(
      gguf,
      [
        ["tokenizer.chat_template", { type: GGUF_TYPE.string, value: LLAMA2 }],
        [
          "tokenizer.ggml.tokens",
          { type: GGUF_TYPE.array, itemType: GGUF_TYPE.string, value: ["<unk>", "<s>", "</s>"] },
        ],
        ["tokenizer.ggml.bos_token_id", { type: GGUF_TYPE.uint32, value: 1 }],
        ["tokenizer.ggml.eos_token_id", { type: GGUF_TYPE.uint32, value: 2 }],
      ],
      [],
    );
    expect(chatTemplateOf({ format: "gguf", source: gguf }).render(messages)).toBe("[INST] Hi [/INST]");
  });
});
