// `openlora node start` as an operator runs it: a child process in free mode with the demo adapters, a config
// file, aliases that outlive a restart, plain progress lines off a terminal, and a clean stop on SIGTERM/SIGINT.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, expect, it } from "vitest";
import { STORIES_DIR } from "../helpers/stories.ts";
import { ADAPTERS_DIR } from "./helpers.ts";

const CLI = join(import.meta.dirname, "../../node/cli/openlora.ts");

interface Running {
  child: ChildProcess;
  url: string;
  /** Every stdout line (JSON log lines) so far. */
  lines: Record<string, unknown>[];
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the CLI and resolves once it logs node_started (or rejects with its stderr if it exits first). */
function startCli(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [CLI, "node", "start", ...args], {
    env: { ...process.env, NODE_NO_WARNINGS: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  const lines: Record<string, unknown>[] = [];
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      lines.push(parsed);
      if (parsed.event === "node_started")
        resolve({ child, url: parsed.url as string, lines, stderr: () => stderr, exit });
    });
    void exit.then(({ code }) => reject(new Error(`node exited with ${code} before starting:\n${stderr}`)));
  });
}

async function modelIds(url: string): Promise<string[]> {
  const body = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
  return body.data.map((m) => m.id);
}

describe("openlora node start", () => {
  it("serves the base model and the demo adapters by folder name in free mode, and stops on SIGTERM", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "openlora-node-cli-"));
    const common = [
      "--free",
      "--model",
      STORIES_DIR,
      "--backend",
      "cpu",
      "--api",
      "127.0.0.1:0",
      "--data-dir",
      dataDir,
    ];
    const first = await startCli([...common, "--adapters", ADAPTERS_DIR]);
    expect(await modelIds(first.url)).toEqual(["stories260K", "dragon", "ocean", "robot"]);
    const answer = await fetch(`${first.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "robot", prompt: "Once upon a time", max_tokens: 12, temperature: 0 }),
    });
    const body = (await answer.json()) as { choices: { text: string }[] };
    expect(body.choices[0].text.startsWith(", Bolt the robot")).toBe(true);
    expect(first.stderr()).toMatch(/\[openlora\] importing adapters 3\/3: robot/); // plain lines off a terminal
    expect(first.stderr()).toMatch(/serving stories260K on cpu at http:\/\/127\.0\.0\.1:\d+ \(free mode\)/);

    first.child.kill("SIGTERM");
    expect(await first.exit).toEqual({ code: 0, signal: null });
    const events = first.lines.map((l) => l.event);
    expect(events).toContain("request");
    expect(events.slice(-2)).toEqual(["node_stopping", "node_stopped"]);

    // Restarted on the same data folder without --adapters: the adapters and their aliases are still there.
    const second = await startCli(common);
    expect(await modelIds(second.url)).toEqual(["stories260K", "dragon", "ocean", "robot"]);
    second.child.kill("SIGINT");
    expect((await second.exit).code).toBe(0);
  });

  it("reads a config file, flags winning over it", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "openlora-node-cli-"));
    const config = join(dataDir, "node.json");
    const options = { free: true, model: STORIES_DIR, backend: "cpu", api: "127.0.0.1:1", dataDir, adapterSlots: 2 };
    await writeFile(config, JSON.stringify({ ...options, threads: 1 }));
    const running = await startCli(["--config", config, "--api", "127.0.0.1:0", "--backend", "simd"]);
    expect(await modelIds(running.url)).toEqual(["stories260K"]);
    expect(running.stderr()).toMatch(/serving stories260K on simd at/);
    running.child.kill("SIGTERM");
    expect((await running.exit).code).toBe(0);
  });

  it("refuses bad options with exit code 2 and says what is wrong", { timeout: 180_000 }, async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, "node", "start", ...args], { stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
        child.on("exit", (code) => resolve({ code, stderr }));
      });
    expect(await run(["--free"])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--model is required/) });
    expect(await run(["--free", "--model", STORIES_DIR, "--price", "5"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--free serves without payment: drop --price/),
    });
    expect(await run(["--free", "--model", STORIES_DIR, "--api", "localhost"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--api must be host:port/),
    });
    expect(await run(["--free", "--model", STORIES_DIR, "--threads", "0"])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--threads/),
    });
    const dir = await mkdtemp(join(tmpdir(), "openlora-node-cli-"));
    await writeFile(join(dir, "bad.json"), JSON.stringify({ modle: "x" }));
    expect(await run(["--config", join(dir, "bad.json")])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/unknown key "modle"/),
    });
  });
});
