// `openlora usage --adapter <id|alias|base>`: an adapter's requests, tokens and earnings by hour, from a node's
// ledger: through the running node's API (--node, GET /v1/usage), or from its data folder when it is stopped
// (--data-dir: the ledger is LevelDB, which one process holds at a time).
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { formatUnits } from "viem";
import { isAdapterId } from "../../engine/index.ts";
import { Ledger, type UsageBucket } from "../../ledger/index.ts";
import { parseCommand, required, stringOption, UsageError, type CommandSpec, type ParsedCommand } from "../args.ts";

const spec: CommandSpec = {
  summary: "Show an adapter's usage by hour (requests, tokens, earnings) from a node's ledger.",
  usage: "openlora usage --adapter <id|alias|base> (--node <API URL> | --data-dir <node data folder>) [--json]",
  options: {
    adapter: { type: "string" },
    node: { type: "string" },
    "data-dir": { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    json: { type: "boolean" },
  },
  help: {
    adapter: "the adapter: content hash, an alias the node knows, or base (the base model)",
    node: "a running node's API URL (asks its GET /v1/usage)",
    "data-dir": "or a stopped node's data folder (reads its ledger directly)",
    from: "first hour, ISO 8601 or ms since 1970 (default: all)",
    to: "end, exclusive (default: now)",
    json: "print one JSON object: hour buckets and the total (earnings in OPEN, exact)",
  },
};

interface Report {
  adapter: string;
  buckets: { hourStart: string; requests: number; promptTokens: number; completionTokens: number; cost: bigint }[];
}

export async function usageCommand(argv: string[]): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const { values } = args;
  const adapter = required(values, "adapter");
  const node = stringOption(values, "node");
  const dataDir = stringOption(values, "data-dir");
  if ((node === undefined) === (dataDir === undefined))
    throw new UsageError("give --node <API URL> or --data-dir <folder>");
  const from = timeOption(values, "from");
  const to = timeOption(values, "to");
  const report =
    node !== undefined ? await fromNode(node, adapter, from, to) : await fromLedger(dataDir!, adapter, from, to);
  print(report, values.json === true);
}

async function fromNode(node: string, adapter: string, from?: number, to?: number): Promise<Report> {
  if (!URL.canParse(node)) throw new UsageError(`--node must be the node's API URL, got "${node}"`);
  const url = new URL("/v1/usage", node);
  url.searchParams.set("adapter", adapter);
  if (from !== undefined) url.searchParams.set("from", String(from));
  if (to !== undefined) url.searchParams.set("to", String(to));
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    throw new Error(`cannot reach the node at ${node}: ${(error as Error).message}`);
  }
  const body = (await response.json().catch(() => ({}))) as {
    data?: {
      adapter: string | null;
      hour_start: string;
      requests: number;
      prompt_tokens: number;
      completion_tokens: number;
      cost: string;
    }[];
    error?: { message?: string; code?: string };
  };
  if (!response.ok) {
    const unknown = response.status === 404 ? `unknown adapter "${adapter}" on ${node}: ` : "";
    throw new Error(`${unknown}${body.error?.message ?? `HTTP ${response.status}`}`);
  }
  const data = body.data ?? [];
  return {
    adapter: data[0]?.adapter ?? adapter,
    buckets: data.map((b) => ({
      hourStart: b.hour_start,
      requests: b.requests,
      promptTokens: b.prompt_tokens,
      completionTokens: b.completion_tokens,
      cost: BigInt(b.cost),
    })),
  };
}

async function fromLedger(dataDir: string, adapter: string, from?: number, to?: number): Promise<Report> {
  const dir = resolve(dataDir);
  const id = adapter === "base" ? null : await adapterIdIn(dir, adapter);
  let ledger: Ledger;
  try {
    ledger = await Ledger.open(join(dir, "ledger"));
  } catch (error) {
    throw new Error(
      `cannot open the ledger in ${dir}: ${(error as Error).message} ` +
        "(a running node holds it: use --node <its API URL>)",
    );
  }
  try {
    const buckets: UsageBucket[] = await ledger.usage({ adapter: id, from, to });
    return {
      adapter: id ?? "base",
      buckets: buckets.map((b) => ({ ...b, hourStart: new Date(b.hourStart).toISOString() })),
    };
  } finally {
    await ledger.close();
  }
}

/** An adapter id, or an alias from the node's aliases.json. */
async function adapterIdIn(dir: string, adapter: string): Promise<`0x${string}`> {
  const id = adapter.toLowerCase();
  if (isAdapterId(id)) return id as `0x${string}`;
  let aliases: Record<string, string> = {};
  try {
    aliases =
      (JSON.parse(await readFile(join(dir, "aliases.json"), "utf8")) as { aliases?: Record<string, string> }).aliases ??
      {};
  } catch {
    // no aliases file: only ids name adapters
  }
  const aliased = aliases[adapter];
  if (aliased === undefined || !isAdapterId(aliased)) {
    throw new UsageError(
      `unknown adapter "${adapter}": not an adapter id (0x and 64 hex digits) nor an alias of the node in ${dir}`,
    );
  }
  return aliased as `0x${string}`;
}

function timeOption(values: ParsedCommand["values"], name: string): number | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(ms)) throw new UsageError(`--${name} must be an ISO 8601 date or ms since 1970, got "${text}"`);
  return ms;
}

function print(report: Report, json: boolean): void {
  const total = report.buckets.reduce(
    (t, b) => ({
      requests: t.requests + b.requests,
      promptTokens: t.promptTokens + b.promptTokens,
      completionTokens: t.completionTokens + b.completionTokens,
      cost: t.cost + b.cost,
    }),
    { requests: 0, promptTokens: 0, completionTokens: 0, cost: 0n },
  );
  if (json) {
    const open = (wei: bigint): string => formatUnits(wei, 18);
    console.log(
      JSON.stringify({
        adapter: report.adapter,
        buckets: report.buckets.map((b) => ({ ...b, cost: open(b.cost) })),
        total: { ...total, cost: open(total.cost) },
      }),
    );
    return;
  }
  console.log(`adapter  ${report.adapter}`);
  console.log("hour (UTC)                requests  prompt  completion  earned (OPEN)");
  const row = (label: string, c: Omit<Report["buckets"][number], "hourStart">): string =>
    [
      label.padEnd(25),
      String(c.requests).padStart(8),
      String(c.promptTokens).padStart(7),
      String(c.completionTokens).padStart(11),
      ` ${formatUnits(c.cost, 18)}`,
    ].join(" ");
  for (const b of report.buckets) console.log(row(b.hourStart, b));
  console.log(row("total", total));
}
