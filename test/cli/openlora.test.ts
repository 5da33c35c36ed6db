import { statSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { STORIES_DIR } from "../helpers/stories.ts";
import { openlora } from "./run-cli.ts";

const generateJson = async (...extra: string[]) => {
  const run = await openlora(
    "generate",
    "--model",
    STORIES_DIR,
    "--prompt",
    "Once upon a time",
    "--temperature",
    "0",
    "--max-tokens",
    "40",
    "--backend",
    "cpu",
    "--json",
    ...extra,
  );
  expect(run.stderr).toBe("");
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as {
    text: string;
    tokenIds: number[];
    promptTokenIds: number[];
    adapterId: string | null;
    backend: string;
    msPerToken: number;
  };
};

describe("openlora CLI", () => {
  it("generate --json prints the documented object, and each demo adapter changes the story", async () => {
    const base = await generateJson();
    expect(base.text.startsWith(", there was a little girl named Lily.")).toBe(true);
    expect(base.promptTokenIds).toEqual([1, 403, 407, 261, 378]);
    expect(base.tokenIds).toHaveLength(40);
    expect(base).toMatchObject({ adapterId: null, backend: "cpu" });
    expect(base.msPerToken).toBeGreaterThan(0);
    const starts = {
      dragon: ", there was a funny dragon named Max.",
      ocean: ", there was a shiny blue fish named Finn.",
      robot: ", Bolt the robot lived in a little box in the shop.",
    };
    for (const [name, start] of Object.entries(starts)) {
      const run = await generateJson("--adapter", join(STORIES_DIR, "adapters", name));
      expect(run.text.startsWith(start)).toBe(true);
      expect(run.adapterId).toMatch(/^0x[0-9a-f]{64}$/);
    }
  });

  it("--help works on every command", async () => {
    for (const command of [
      [],
      ["generate"],
      ["adapter"],
      ["adapter", "inspect"],
      ["adapter", "new"],
      ["model"],
      ["model", "new"],
      ["demo"],
    ]) {
      const run = await openlora(...command, "--help");
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/Usage: openlora/);
    }
  });

  it("rejects bad arguments with exit code 2 and says what is wrong", async () => {
    expect(await openlora("fly")).toMatchObject({ code: 2, stderr: expect.stringMatching(/unknown command "fly"/) });
    expect(await openlora("generate", "--model", STORIES_DIR, "--prompt", "x", "--temperature", "hot")).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--temperature must be a number, got "hot"/),
    });
    expect(await openlora("generate", "--model", STORIES_DIR, "--prompt", "x", "--backend", "tpu")).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--backend must be one of cpu, webgpu, simd, auto/),
    });
    expect(await openlora("generate", "--model", STORIES_DIR)).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--prompt is required/),
    });
    expect(await openlora("generate", "--bogus")).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/Unknown option '--bogus'/),
    });
  });

  it("names the file when the model or adapter cannot be used (exit code 1)", async () => {
    const missing = await openlora("generate", "--model", "/nonexistent/model.bin", "--prompt", "x");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/\/nonexistent\/model\.bin/);
    const badAdapter = await openlora(
      "generate",
      "--model",
      STORIES_DIR,
      "--adapter",
      STORIES_DIR,
      "--prompt",
      "x",
      "--backend",
      "cpu",
    );
    expect(badAdapter.code).toBe(1);
    expect(badAdapter.stderr).toMatch(/cannot read adapter_config\.json/);
  });

  it("adapter new writes an adapter that adapter inspect describes and generate uses", async () => {
    const dir = join(await mkdtemp(join(tmpdir(), "openlora-cli-")), "random");
    const created = await openlora(
      "adapter",
      "new",
      "--model",
      STORIES_DIR,
      "--rank",
      "4",
      "--targets",
      "q,v,down",
      "--seed",
      "3",
      "--out",
      dir,
    );
    expect(created.code).toBe(0);
    const inspect = await openlora("adapter", "inspect", dir, "--json");
    const summary = JSON.parse(inspect.stdout);
    expect(summary).toMatchObject({
      rank: 4,
      alpha: 8,
      targets: ["q", "v", "down"],
      layers: 5,
      baseModel: "stories260K",
    });
    expect(summary.parameters).toBe(
      5 * (4 * 64 + 64 * 4) * 2 + 5 * (4 * 64 + 32 * 4) - 5 * (4 * 64 + 64 * 4) + 5 * (4 * 172 + 64 * 4),
    );
    expect(created.stdout).toContain(summary.id);
    const text = await openlora("adapter", "inspect", join(STORIES_DIR, "adapters", "ocean"));
    expect(text.stdout).toMatch(/^id\s+0x[0-9a-f]{64}$/m);
    expect(text.stdout).toMatch(/^targets\s+q,k,v,o,gate,up,down$/m);
    const run = await generateJson("--adapter", dir, "--max-tokens", "5");
    expect(run.adapterId).toBe(summary.id);
  });

  it("model new writes a GGUF that generate runs", async () => {
    const file = join(await mkdtemp(join(tmpdir(), "openlora-cli-")), "tiny.gguf");
    const created = await openlora(
      "model",
      "new",
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
      "300",
      "--dtype",
      "f16",
      "--out",
      file,
    );
    expect(created.code).toBe(0);
    const run = await openlora(
      "generate",
      "--model",
      file,
      "--prompt",
      "hello",
      "--max-tokens",
      "8",
      "--backend",
      "cpu",
      "--json",
    );
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).tokenIds).toHaveLength(8);
    expect(
      await openlora(
        "model",
        "new",
        "--layers",
        "2",
        "--dim",
        "30",
        "--hidden",
        "48",
        "--heads",
        "4",
        "--kv-heads",
        "2",
        "--vocab",
        "300",
        "--out",
        file,
      ),
    ).toMatchObject({ code: 2, stderr: expect.stringMatching(/--dim 30 is not a multiple of --heads 4/) });
  });

  it("model new writes K-quant blocks (q4_k) that the loader keeps and generate runs", async () => {
    const dir = await mkdtemp(join(tmpdir(), "openlora-cli-"));
    const shape = ["--layers", "1", "--dim", "256", "--hidden", "512", "--heads", "4", "--kv-heads", "4"];
    const write = (dtype: string) =>
      openlora("model", "new", ...shape, "--vocab", "300", "--dtype", dtype, "--out", join(dir, `${dtype}.gguf`));
    expect(await write("q4_k")).toMatchObject({ code: 0, stdout: expect.stringMatching(/MB q4_k/) });
    expect(await write("f32")).toMatchObject({ code: 0 });
    // Q4_K holds 4.5 bits a weight: the file is far below the f32 one (the 300 x 256 embeddings are whole blocks).
    expect(statSync(join(dir, "q4_k.gguf")).size).toBeLessThan(statSync(join(dir, "f32.gguf")).size / 5);
    const run = await openlora(
      "generate",
      ...["--model", join(dir, "q4_k.gguf"), "--prompt", "hello", "--max-tokens", "4", "--backend", "cpu", "--json"],
    );
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).tokenIds).toHaveLength(4);
    expect(await write("q5_k")).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--dtype must be one of f32, f16, bf16, q8_0, q4_0, q4_k, q6_k, got "q5_k"/),
    });
  });
});
