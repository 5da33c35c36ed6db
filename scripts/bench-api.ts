// What the HTTP API adds to a request, written to bench/api.json (flat object).
//   npm run bench:api      (= bash scripts/run.sh node scripts/bench-api.ts [--pairs N])
// One free node (cpu backend, stories260K and its demo adapters) on 127.0.0.1 in this process, its client in a
// worker thread (its own event loop, as a separate process would have), and the same engine called directly. Each pair runs the same greedy request both ways, in alternating order; the overhead is
// the median of the differences (HTTP minus direct), so the engine's own time and the machine's drift cancel.
// The HTTP side counts everything a client sees over a kept-alive connection: the client's request and parsing,
// fastify's routing and JSON parsing, validation, tokenization, the ledger's write (LevelDB, one batch per
// request), the answer's JSON (or SSE events) and the structured log line.
// - whole_1tok: non-streamed, max_tokens 1, base model. whole_16tok: non-streamed, 16 tokens, adapter "dragon".
// - stream_16tok: the same 16 tokens streamed (SSE, one event per token), to the last byte.
import { fork } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { NodeService, silentLogger } from "../node/api/index.ts";
import { complete, type EngineRequest } from "../node/engine/index.ts";
import { percentile, round } from "./bench/stats.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({ options: { pairs: { type: "string" } } });
const pairs = Number(values.pairs ?? 300);
const warmup = 30;

const dataDir = await mkdtemp(join(tmpdir(), "openlora-bench-api-"));
const node = await NodeService.start({
  dataDir,
  model: join(root, "models/stories260K"),
  backend: "cpu",
  adapters: join(root, "models/stories260K/adapters"),
  api: { host: "127.0.0.1", port: 0 },
  log: silentLogger,
});
const dragon = node.catalog.resolve("dragon")!.adapterId;
const client = fork(join(root, "scripts/bench/http-client-process.ts"), [node.url]);

/** One POST from the client process: the milliseconds it took there, to the answer's last byte. */
function post(path: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    client.once("message", (m: { ms?: number; error?: string }) =>
      m.error ? reject(new Error(m.error)) : resolve(m.ms!),
    );
    client.send({ path, body });
  });
}

interface Workload {
  name: string;
  http: Record<string, unknown>;
  direct: EngineRequest;
}

const prompt = "Once upon a time";
const workloads: Workload[] = [
  {
    name: "whole_1tok",
    http: { model: "stories260K", prompt, max_tokens: 1, temperature: 0 },
    direct: { adapterId: null, prompt, maxTokens: 1, temperature: 0 },
  },
  {
    name: "whole_16tok",
    http: { model: "dragon", prompt, max_tokens: 16, temperature: 0, ignore_eos: true },
    direct: { adapterId: dragon, prompt, maxTokens: 16, temperature: 0, ignoreEos: true },
  },
  {
    name: "stream_16tok",
    http: { model: "dragon", prompt, max_tokens: 16, temperature: 0, ignore_eos: true, stream: true },
    direct: { adapterId: dragon, prompt, maxTokens: 16, temperature: 0, ignoreEos: true },
  },
];

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

const results: Record<string, number | string> = {
  machine: "shared 2-core VM (others' jobs running); server and engine in one process, the client in another",
  pairs,
  load_average_1min_at_start: round(loadavg()[0]),
};
for (const w of workloads) {
  const viaHttp = () => post("/v1/completions", w.http);
  const direct = () => complete(node.engine, w.direct);
  for (let i = 0; i < warmup; i++) {
    await viaHttp();
    await direct();
  }
  const http: number[] = [];
  const engine: number[] = [];
  const diffs: number[] = [];
  for (let i = 0; i < pairs; i++) {
    let httpMs: number;
    let directMs: number;
    if (i % 2 === 0) {
      httpMs = await viaHttp();
      directMs = await timed(direct);
    } else {
      directMs = await timed(direct);
      httpMs = await viaHttp();
    }
    http.push(httpMs);
    engine.push(directMs);
    diffs.push(httpMs - directMs);
  }
  results[`${w.name}_direct_p50_ms`] = round(percentile(engine, 50));
  results[`${w.name}_http_p50_ms`] = round(percentile(http, 50));
  results[`${w.name}_overhead_p50_ms`] = round(percentile(diffs, 50));
  results[`${w.name}_overhead_p90_ms`] = round(percentile(diffs, 90));
  console.log(
    `${w.name.padEnd(14)} direct p50 ${results[`${w.name}_direct_p50_ms`]} ms, http p50 ${results[`${w.name}_http_p50_ms`]} ms,` +
      ` overhead p50 ${results[`${w.name}_overhead_p50_ms`]} ms (p90 ${results[`${w.name}_overhead_p90_ms`]} ms)`,
  );
}

client.send("close");
await node.stop();
await rm(dataDir, { recursive: true, force: true });
await mkdir(join(root, "bench"), { recursive: true });
await writeFile(join(root, "bench/api.json"), `${JSON.stringify(results, null, 2)}\n`);
console.log("wrote bench/api.json");
