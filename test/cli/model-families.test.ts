// `openlora model new --family ...` writes a random model of each family in both forms, and `openlora generate
// --model <folder or .gguf> --adapter <peft> --chat` answers through the model's chat template: the same greedy
// tokens from the Hugging Face folder and from the GGUF. The commands run in this process (their argv and
// printed output, as the executable has them) to keep the suite short; one family also runs as the real executable.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { adapterCommand } from "../../node/cli/commands/adapter.ts";
import { generateCommand } from "../../node/cli/commands/generate.ts";
import { modelCommand } from "../../node/cli/commands/model.ts";
import { MODEL_PRESETS } from "../../node/engine/formats/model-presets.ts";
import { openlora } from "./run-cli.ts";

const dir = mkdtempSync(join(tmpdir(), "openlora-cli-families-"));
const shape = [
  "--layers",
  "2",
  "--dim",
  "32",
  "--hidden",
  "48",
  "--heads",
  "4",
  "--kv-heads",
  "2",
  "--vocab",
  "400",
  "--context",
  "64",
];

/** Runs a command in this process and returns what it printed with console.log. */
async function printed(command: (argv: string[]) => Promise<void>, ...argv: string[]): Promise<string> {
  const log = vi.spyOn(console, "log").mockImplementation(() => {});
  vi.spyOn(console, "error").mockImplementation(() => {});
  vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  try {
    await command(argv);
    return log.mock.calls.map((call) => call.join(" ")).join("\n");
  } finally {
    vi.restoreAllMocks();
  }
}

const headDim = (family: string) => (family === "qwen3" || family === "gemma2" ? ["--head-dim", "12"] : []);
/** Mistral's template takes user and assistant turns only, as Mistral's own does. */
const chat = (family: string, lora: string) => [
  "--chat",
  ...(family === "mistral" ? [] : ["--system", "Be brief."]),
  "--prompt",
  "Hello there",
  "--adapter",
  lora,
  "--temperature",
  "0",
  "--max-tokens",
  "6",
  "--backend",
  "cpu",
  "--json",
];

describe("model new --family and generate --chat", () => {
  it.each(MODEL_PRESETS)("%s: the same reply from the HF folder and the GGUF, with an adapter", async (family) => {
    const [hf, gguf, lora] = [join(dir, `${family}-hf`), join(dir, `${family}.gguf`), join(dir, `${family}-lora`)];
    expect(
      await printed(
        modelCommand,
        "new",
        "--family",
        family,
        "--format",
        "hf",
        ...shape,
        ...headDim(family),
        "--seed",
        "5",
        "--out",
        hf,
      ),
    ).toMatch(new RegExp(`^wrote ${hf}: random-${family}-2x32 \\(${family}\\), .* Hugging Face folder, float32`));
    expect(
      await printed(
        modelCommand,
        "new",
        "--family",
        family,
        ...shape,
        ...headDim(family),
        "--seed",
        "5",
        "--out",
        gguf,
      ),
    ).toMatch(/MB f32/);
    const created = await printed(adapterCommand, "new", "--model", hf, "--rank", "4", "--seed", "9", "--out", lora);
    const id = /^wrote .*: adapter (0x[0-9a-f]{64})/.exec(created)![1];
    // inspect (and register) compute the id the nodes serving the model compute, from either form's config alone.
    for (const model of [hf, gguf]) {
      const summary = JSON.parse(await printed(adapterCommand, "inspect", lora, "--model", model, "--json"));
      expect(summary).toMatchObject({
        id,
        family: family === "llama3" || family === "mistral" ? "llama" : family,
        rank: 4,
      });
    }
    const a = JSON.parse(await printed(generateCommand, "--model", hf, ...chat(family, lora)));
    const b = JSON.parse(await printed(generateCommand, "--model", gguf, ...chat(family, lora)));
    expect([a.adapterId, b.adapterId]).toEqual([id, id]);
    expect(b.promptTokenIds).toEqual(a.promptTokenIds);
    expect(b.tokenIds).toEqual(a.tokenIds);
    expect(a.promptTokenIds.length).toBeGreaterThan(8); // the template's turn markers around the message
  });

  it("the executable: generate --chat --adapter on a Gemma 2 GGUF, and webgpu gives the cpu backend's tokens", async () => {
    const [gguf, lora] = [join(dir, "gemma2.gguf"), join(dir, "gemma2-lora")];
    const run = await openlora("generate", "--model", gguf, ...chat("gemma2", lora));
    expect(run.code, run.stderr).toBe(0);
    const cpu = JSON.parse(run.stdout);
    const gpu = JSON.parse(
      await printed(generateCommand, "--model", gguf, ...chat("gemma2", lora), "--backend", "webgpu"),
    );
    expect(gpu.tokenIds).toEqual(cpu.tokenIds);
  });

  it("refuses a family it does not know and --format hf without a family", async () => {
    await expect(printed(modelCommand, "new", "--family", "phi3", ...shape, "--out", join(dir, "x"))).rejects.toThrow(
      '--family must be one of llama3, qwen2, qwen3, mistral, gemma2, got "phi3"',
    );
    await expect(printed(modelCommand, "new", "--format", "hf", ...shape, "--out", join(dir, "y"))).rejects.toThrow(
      "--format hf needs --family",
    );
  });
});
