// `openlora demo` (what `npm start` runs) and `generate --backend webgpu`, through the executable: the stories the
// demo prints are the engine's own greedy completions, on the cpu backend and on the one `auto` picks (webgpu where
// an adapter answers, lavapipe here), and the CLI's webgpu tokens equal its cpu tokens.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEMO_ADAPTERS, oneShotEngine, STORIES_DIR } from "../helpers/stories.ts";
import { openlora } from "./run-cli.ts";

const PROMPT = "Once upon a time";
const engine = oneShotEngine();

/** What the demo must print for each story: the label's start and the prompt with the engine's greedy text. */
async function expectedStories(maxTokens: number): Promise<{ label: string; line: string }[]> {
  const one = await engine();
  const stories = [{ label: "[(no adapter)]", adapterId: null as string | null }];
  for (const name of DEMO_ADAPTERS) {
    const { id } = await one.engine.adapters.import(join(STORIES_DIR, "adapters", name));
    stories.push({ label: `[${name} ${id.slice(0, 18)}...]`, adapterId: id });
  }
  const out = [];
  for (const { label, adapterId } of stories) {
    const { text } = await one.complete({ prompt: PROMPT, adapterId, maxTokens, temperature: 0 });
    out.push({ label, line: `${label} ${PROMPT}${text}` });
  }
  return out;
}

/** The demo's stories in the order printed, each its "[label] prompt+text" line, and its "(N tokens, ...)" note. */
function printedStories(stdout: string): { line: string; note: string }[] {
  const blocks = stdout
    .split("\n\n")
    .slice(1)
    .filter((b) => b.trim() !== "");
  return blocks.map((block) => {
    const at = block.lastIndexOf("\n  (");
    return { line: block.slice(0, at), note: block.slice(at + 4) };
  });
}

describe("openlora demo", () => {
  it("--backend cpu prints the base model's and each demo adapter's greedy story, as the engine tells them", async () => {
    const run = await openlora("demo", "--backend", "cpu", "--max-tokens", "30");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^OpenLoRA demo: stories260K \(\w+\) on cpu \(.+\), greedy, 30 tokens\n/);
    const printed = printedStories(run.stdout);
    const expected = await expectedStories(30);
    expect(printed.map((p) => p.line)).toEqual(expected.map((e) => e.line));
    for (const { note } of printed) expect(note).toMatch(/^30 tokens, \d+\.\d\d ms\/token\)$/);
    // The adapters do tell different stories.
    expect(new Set(printed.map((p) => p.line.slice(p.line.indexOf("]")))).size).toBe(4);
  });

  it("with no options (npm start) runs on the backend auto picks and tells the same stories", async () => {
    const run = await openlora("demo", "--max-tokens", "16");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^OpenLoRA demo: stories260K \(\w+\) on (webgpu|simd) \(.+\), greedy, 16 tokens\n/);
    expect(printedStories(run.stdout).map((p) => p.line)).toEqual((await expectedStories(16)).map((e) => e.line));
  });

  it("refuses bad options with exit code 2, naming the problem", async () => {
    expect(await openlora("demo", "--max-tokens", "0")).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--max-tokens must be at least 1, got 0/),
    });
    expect(await openlora("demo", "--backend", "tpu")).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--backend must be one of cpu, webgpu, simd, auto, got "tpu"/),
    });
    const missing = await openlora("demo", "--model", "/nonexistent/model", "--backend", "cpu");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/\/nonexistent\/model/);
  });
});

describe("openlora generate --backend webgpu", () => {
  const generate = async (backend: string, ...extra: string[]) => {
    const run = await openlora(
      "generate",
      "--model",
      STORIES_DIR,
      "--prompt",
      PROMPT,
      "--temperature",
      "0",
      "--max-tokens",
      "48",
      "--backend",
      backend,
      "--json",
      ...extra,
    );
    expect(run.code, run.stderr).toBe(0);
    return JSON.parse(run.stdout) as { text: string; tokenIds: number[]; backend: string; adapterId: string | null };
  };

  it("gives the cpu backend's tokens, with and without an adapter", async () => {
    for (const extra of [[], ["--adapter", join(STORIES_DIR, "adapters", "ocean")]]) {
      const [gpu, cpu] = [await generate("webgpu", ...extra), await generate("cpu", ...extra)];
      expect(gpu.backend).toBe("webgpu");
      expect(cpu.backend).toBe("cpu");
      expect(gpu.tokenIds).toHaveLength(48);
      expect(gpu.tokenIds).toEqual(cpu.tokenIds);
      expect(gpu.text).toBe(cpu.text);
      expect(gpu.adapterId).toBe(cpu.adapterId);
    }
  });
});
