// What the HTTP API adds to a request, written to bench/api.json (flat object).
//   npm run bench:api      (= bash scripts/run.sh node scripts/bench-api.ts [--pairs N])
// One free node (cpu backend, stories260K and its demo adapters) on 127.0.0.1 in this process, its client in
// another process, and the same engine called directly. Each pair runs the same greedy request both ways, in
// alternating order; the overhead is the median of the differences (HTTP minus direct), so the engine's own time
// and the machine's drift cancel. The HTTP side counts everything a client sees over a kept-alive connection: the
// client's request and parsing, fastify's routing and JSON parsing, validation, tokenization, the answer's JSON
// (or SSE events), the structured log line (written as the node writes it, here to /dev/null) and the ledger's
// write (LevelDB, one batch per request, just after a free request's answer).
// - whole_1tok: non-streamed, max_tokens 1, base model. whole_16tok: non-streamed, 16 tokens, adapter "dragon".
// - stream_16tok: the same 16 tokens streamed (SSE, one event per token), to the last byte.
// Paid mode adds, per request, work that needs no chain once listings and balances are cached: the voucher's
// signature recovery, the receipt's EIP-712 signature, and the ledger write before the answer ends (a paid record
// holds the voucher settlement claims). Each is timed here on its own (paid_*), in the same process.
import { fork } from "node:child_process";
import { openSync, writeSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Writable } from "node:stream";
import type { Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { jsonLogger, NodeService, type Logger } from "../node/api/index.ts";
import { recoverVoucherSigner, signReceipt, signVoucher, type Receipt } from "../node/chain/index.ts";
import { complete, type EngineRequest } from "../node/engine/index.ts";
import { Ledger, type RequestRecord } from "../node/ledger/index.ts";
import { httpPoster } from "./bench/http-post.ts";
import { percentile, round } from "./bench/stats.ts";
import { scriptArgs } from "./script-args.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const values = scriptArgs(
  "What the HTTP API adds to a request over a direct engine call (paired runs), and paid mode's own work.",
  "npm run bench:api -- [--pairs N]",
  { pairs: { type: "string", help: "paired requests per workload (default 300)" } },
);
const pairs = Number(values.pairs ?? 300);
const warmup = 30;

/** Per request, from the node's log line: its handler's time outside the engine (ms - engine_ms). */
let handlerMs: number[] = [];
// The node's own log writer, onto /dev/null as synchronously as stdout onto a file or a pipe.
const devNull = openSync("/dev/null", "w");
const lines = jsonLogger(
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      writeSync(devNull, chunk);
      done();
    },
  }),
);
const log: Logger = {
  log(level, event, fields = {}) {
    lines.log(level, event, fields);
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

/** The CPU time (user + system, ms) the client process has used so far. */
function clientCpuMs(): Promise<number> {
  return new Promise((resolve) => {
    client.once("message", (m: { cpuMs: number }) => resolve(m.cpuMs));
    client.send("cpu");
  });
}

/** The CPU time (user + system, ms) this process (node, engine, ledger threads) has used so far. */
function ownCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

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

/**
 * CPU per request, which a loaded machine inflates far less than wall time: this process's over `runs` direct
 * calls, then this process's and the client's over `runs` HTTP requests (the ledger's write just after each answer
 * included). The difference is the CPU the API adds per request, both ends of the connection counted (and the
 * benchmark's own IPC to the client, a few hundredths of a ms).
 */
async function cpuPerRequest(viaHttp: () => Promise<unknown>, direct: () => Promise<unknown>, runs: number) {
  let start = ownCpuMs();
  for (let i = 0; i < runs; i++) await direct();
  const directMs = (ownCpuMs() - start) / runs;
  const clientStart = await clientCpuMs();
  start = ownCpuMs();
  for (let i = 0; i < runs; i++) await viaHttp();
  await new Promise((resolve) => setTimeout(resolve, 50)); // the last answer's ledger write
  const serverMs = (ownCpuMs() - start) / runs;
  const clientMs = (await clientCpuMs()) / runs - clientStart / runs;
  return { directMs, serverMs, clientMs, addedMs: serverMs + clientMs - directMs };
}

for (const w of workloads) {
  const direct = () => complete(node.engine, w.direct);
  handlerMs = [];
  const apart = await measure(() => post("/v1/completions", w.http), direct);
  const handler = percentile(handlerMs, 50);
  const together = await measure(() => inProcess.post("/v1/completions", w.http), direct);
  const cpu = await cpuPerRequest(() => post("/v1/completions", w.http), direct, pairs);
  Object.assign(results, {
    [`${w.name}_cpu_direct_ms`]: round(cpu.directMs),
    [`${w.name}_cpu_http_server_ms`]: round(cpu.serverMs),
    [`${w.name}_cpu_http_client_ms`]: round(cpu.clientMs),
    [`${w.name}_cpu_added_ms`]: round(cpu.addedMs),
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
      `handler outside the engine ${round(handler)} ms; CPU per request: direct ${round(cpu.directMs)} ms, ` +
      `HTTP ${round(cpu.serverMs)} ms + client ${round(cpu.clientMs)} ms, added ${round(cpu.addedMs)} ms`,
  );
}

inProcess.close();
client.send("close");
await node.stop();

/** p50 of `fn`'s time over `runs` runs, after a warm-up. */
async function p50Of(runs: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 20; i++) await fn(i);
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) ms.push(await timed(() => fn(i)));
  return percentile(ms, 50);
}

// Paid mode's own work per request, with the node's key and a payer's (local accounts, as keystores give them).
const escrow = { chainId: 31337, verifyingContract: "0x5FbDB2315678afecb367f032d93F642f64180aa3" as const };
const payer = privateKeyToAccount(generatePrivateKey());
const operator = privateKeyToAccount(generatePrivateKey());
const listingId: Hex = `0x${"ab".repeat(32)}`;
const voucher = { payer: payer.address, node: operator.address, listingId, cumulativeAmount: 10n ** 15n };
const voucherSignature = await signVoucher(payer, voucher, escrow);
const receipt: Receipt = {
  requestId: "cmpl-0123456789abcdef01234567",
  payer: payer.address,
  node: operator.address,
  listingId,
  adapter: dragon!,
  promptTokens: 5n,
  completionTokens: 16n,
  cost: 21n * 10n ** 12n,
  cumulativeConsumed: 21n * 10n ** 12n,
  voucherAmount: voucher.cumulativeAmount,
};
const paidRuns = Math.max(100, pairs);
const recoverMs = await p50Of(paidRuns, () => recoverVoucherSigner(voucher, voucherSignature, escrow));
const signMs = await p50Of(paidRuns, () => signReceipt(operator, receipt, escrow));
const ledgerDir = await mkdtemp(join(tmpdir(), "openlora-bench-ledger-"));
const ledger = await Ledger.open(ledgerDir);
const paidRecord = (i: number): RequestRecord => ({
  id: `cmpl-bench-${i}`,
  adapter: dragon!,
  listingId,
  payer: payer.address,
  node: operator.address,
  usage: { promptTokens: 5, completionTokens: 16 },
  cost: 21n * 10n ** 12n,
  voucher: { ...voucher, cumulativeAmount: voucher.cumulativeAmount + BigInt(i), signature: voucherSignature },
  receipt: { cumulativeConsumed: 21n * 10n ** 12n * BigInt(i + 1), signature: voucherSignature },
  timings: { receivedAt: Date.now(), firstTokenAt: Date.now(), finishedAt: Date.now() },
  finishReason: "length",
});
const recordMs = await p50Of(paidRuns, (i) => ledger.recordRequest(paidRecord(i)));
await ledger.close();
await rm(ledgerDir, { recursive: true, force: true });
Object.assign(results, {
  paid_voucher_recover_p50_ms: round(recoverMs),
  paid_receipt_sign_p50_ms: round(signMs),
  paid_ledger_write_p50_ms: round(recordMs),
  paid_added_p50_ms: round(recoverMs + signMs + recordMs),
  load_average_1min_at_end: round(loadavg()[0]),
});
console.log(
  `paid mode    voucher recovery ${round(recoverMs)} ms, receipt signature ${round(signMs)} ms, ledger write ` +
    `before the answer ${round(recordMs)} ms (p50s): ${round(recoverMs + signMs + recordMs)} ms per paid request`,
);
await rm(dataDir, { recursive: true, force: true });
await mkdir(join(root, "bench"), { recursive: true });
await writeFile(join(root, "bench/api.json"), `${JSON.stringify(results, null, 2)}\n`);
console.log("wrote bench/api.json");
