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
import { NodeService, type Logger } from "../node/api/index.ts";
import { complete, type EngineRequest } from "../node/engine/index.ts";
import { httpPoster } from "./bench/http-post.ts";
import { percentile, round } from "./bench/stats.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({ options: { pairs: { type: "string" } } });
const pairs = Number(values.pairs ?? 300);
const warmup = 30;

/** Per request, from the node's log line: its handler's time outside the engine (ms - engine_ms). */
let handlerMs: number[] = [];
const log: Logger = {
  log(_, event, fields = {}) {
    if (event === "request") handlerMs.push((fields.ms as number) - (fields.engine_ms as number));
  },
};
const dataDir = await mkdtemp(join(tmpdir(), "openlora-bench-api-"));
const node = await NodeService.start({
  dataDir,
  model: join(root, "models/stories260K"),
  backend: "cpu",
  adapters: join(root, "models/stories260K/adapters"),
  api: { host: "127.0.0.1", port: 0 },
  log,
});
const dragon = node.catalog.resolve("dragon")!.adapterId;
const client = fork(join(root, "scripts/bench/http-client-process.ts"), [node.url]);

const inProcess = httpPoster(node.url);

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
/** Paired runs of the same request over HTTP and directly; the medians and the median difference. */
async function measure(viaHttp: () => Promise<number>, direct: () => Promise<unknown>) {
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
  return {
    http: percentile(http, 50),
    direct: percentile(engine, 50),
    p50: percentile(diffs, 50),
    p90: percentile(diffs, 90),
  };
}

for (const w of workloads) {
  const direct = () => complete(node.engine, w.direct);
  handlerMs = [];
  const apart = await measure(() => post("/v1/completions", w.http), direct);
  const handler = percentile(handlerMs, 50);
  const together = await measure(() => inProcess.post("/v1/completions", w.http), direct);
  Object.assign(results, {
    [`${w.name}_direct_p50_ms`]: round(apart.direct),
    [`${w.name}_http_p50_ms`]: round(apart.http),
    [`${w.name}_overhead_p50_ms`]: round(apart.p50),
    [`${w.name}_overhead_p90_ms`]: round(apart.p90),
    [`${w.name}_overhead_client_in_process_p50_ms`]: round(together.p50),
    [`${w.name}_handler_outside_engine_p50_ms`]: round(handler),
  });
  console.log(
    `${w.name.padEnd(13)} direct ${round(apart.direct)} ms, http ${round(apart.http)} ms (p50s); overhead p50 ` +
      `${round(apart.p50)} ms (p90 ${round(apart.p90)}), client in this process ${round(together.p50)} ms; ` +
      `handler outside the engine ${round(handler)} ms`,
  );
}

inProcess.close();
client.send("close");
await node.stop();
await rm(dataDir, { recursive: true, force: true });
await mkdir(join(root, "bench"), { recursive: true });
await writeFile(join(root, "bench/api.json"), `${JSON.stringify(results, null, 2)}\n`);
console.log("wrote bench/api.json");
