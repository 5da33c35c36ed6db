// kill -9 at random points of a write loop, many times over: after each kill the ledger reopens with every change
// the writer reported done, nothing counted twice, and every total equal to the sum of the records present.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { Ledger } from "../../node/ledger/index.ts";
import { auditLedger } from "./audit.ts";
import { requestFor } from "./records.ts";

const WRITER = join(import.meta.dirname, "crash-writer.ts");
const KILLS = 52;

/** A small seeded generator (mulberry32), so that a failing schedule can be replayed from its printed seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Run {
  lines: string[];
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/**
 * One writer, killed either at a random moment of its start (opening the database, reconciling) or a random
 * fraction of a millisecond to a few milliseconds after its k-th report, that is, in the middle of later writes.
 */
function runWriter(path: string, start: number, rand: () => number): Promise<Run> {
  const child = spawn(process.execPath, [WRITER, path, String(start)], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const kill = (): void => void child.kill("SIGKILL");
  const early = rand() < 0.15;
  const afterLines = 1 + Math.floor(rand() * 20);
  const delayMs = rand() * 4;
  if (early) setTimeout(kill, rand() * 250);
  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    if (!early && lines.length === afterLines) setTimeout(kill, delayMs);
  });
  return new Promise((resolve) => child.on("close", (code, signal) => resolve({ lines, signal, code, stderr })));
}

describe("Ledger crash safety", () => {
  const seed = Number(process.env.LEDGER_CRASH_SEED ?? Date.now() % 1_000_000);
  let dir = "";
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    `survives ${KILLS} SIGKILLs of a writer with nothing lost or counted twice (seed ${seed})`,
    { timeout: 240_000 },
    async () => {
      dir = await mkdtemp(join(tmpdir(), "openlora-ledger-crash-"));
      const path = join(dir, "ledger");
      const rand = random(seed);
      const reported = new Set<number>();
      const finished = new Map<string, string>(); // batch id -> confirmed | failed
      let highest = -1; // highest request number any writer may have started
      let killedAtStart = 0; // kills before the writer reported anything (opening, reconciling, first write)
      for (let kill = 0; kill < KILLS; kill++) {
        // Each writer first retries the last reported request and then whatever it may have left half-reported.
        const start = Math.max(0, Math.max(-1, ...reported) - 1);
        const run = await runWriter(path, start, rand);
        expect(run.signal, `writer ${kill} exited by itself (code ${run.code}): ${run.stderr}`).toBe("SIGKILL");
        for (const line of run.lines) {
          const [kind, id, status] = line.split(" ");
          if (kind === "r") reported.add(Number(id));
          if (kind === "s") finished.set(id, status);
        }
        highest = Math.max(highest, start + run.lines.length + 1);
        if (run.lines.length === 0) killedAtStart += 1;

        const ledger = await Ledger.open(path);
        try {
          const { requests, settlements } = await auditLedger(ledger);
          const present = new Set(requests.map((r) => Number(r.id.slice("req-".length))));
          for (const n of reported) expect(present.has(n), `request ${n} was reported done`).toBe(true);
          for (const r of requests) {
            const n = Number(r.id.slice("req-".length));
            expect(n).toBeLessThanOrEqual(highest);
            expect(r).toEqual(requestFor(n));
          }
          const status = new Map(settlements.map((s) => [s.batchId, s.status]));
          for (const [id, s] of finished) expect(status.get(id), `batch ${id}`).toBe(s);
        } finally {
          await ledger.close();
        }
      }
      expect(reported.size).toBeGreaterThan(KILLS);
      expect(finished.size).toBeGreaterThan(0);
      const summary = `${reported.size} requests and ${finished.size} batches reported`;
      console.log(`ledger crash test: seed ${seed}, ${summary}, ${killedAtStart} kills at start-up`);
    },
  );
});
