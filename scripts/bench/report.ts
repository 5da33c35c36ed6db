// bench/results.json (the flat object the issue names) and this run's table in BENCHMARKS.md.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { round } from "./stats.ts";

/** Exactly the figures of the issue, in its order. */
export interface BenchResults {
  model: string;
  backend: string;
  device: string;
  copy_gbps: number;
  decode_tps_base_b1: number;
  decode_tps_base_b32: number;
  decode_tps_same_b32: number;
  decode_tps_hetero_b32: number;
  hetero_over_base: number;
  bandwidth_util_b1: number;
  adapter_cold_load_ms_p50: number;
  adapter_cold_load_ms_p99: number;
  ttft_ms_p50_warm: number;
  ttft_ms_p50_cold: number;
  zipf_tps: number;
  zipf_p99_ms: number;
  memory_bytes_1000_adapters: number;
  memory_bytes_base: number;
}

/** A goal beside a figure: its text and whether the run met it (null: no pass/fail goal). */
export type Goals = Partial<Record<keyof BenchResults, { text: string; met: boolean | null }>>;

export function writeResults(file: string, results: BenchResults): void {
  mkdirSync(dirname(file), { recursive: true });
  const rounded = Object.fromEntries(
    Object.entries(results).map(([k, v]) => [k, typeof v === "number" ? round(v) : v]),
  );
  writeFileSync(file, JSON.stringify(rounded, null, 2) + "\n");
}

const HEADER = `# Benchmarks

\`npm run bench\` (the default 12-layer dim-768 random model) and \`npm run bench -- --quick\` (a 4-layer dim-256
model, under a minute on two cores) run every workload through the serving engine (scheduler, adapter tiers,
SGMV batching) and write \`bench/results.json\`. Options: \`--backend cpu|webgpu|auto\`, \`--model <path>\`,
\`--shape quick|default|1b\`. Each run replaces its own table below (one per mode and backend); the analysis at
the end is written by hand from these tables.

Conventions: decode tokens/s are steady state (every prompt prefilled, all sequences decoding, EOS ignored);
\`copy_gbps\` is memory traffic of a device copy (read + write bytes per second) measured in the same run;
\`bandwidth_util_b1\` is the weight bytes one decode step reads (every matrix and the classifier, f32) times
batch-1 steps per second, over \`copy_gbps\`; cold loads are disk (page cache) to ready in a slot;
memory is the process's resident set after a full GC (plus device memory on a discrete GPU).
`;

/** Replaces (or adds) this run's block in BENCHMARKS.md, keeping the rest of the file. */
export function writeMarkdown(
  file: string,
  key: string,
  title: string,
  results: BenchResults,
  goals: Goals,
  notes: string[],
): void {
  const rows = (Object.keys(results) as (keyof BenchResults)[]).map((name) => {
    const value = results[name];
    const shown =
      typeof value === "number"
        ? name.startsWith("memory_bytes")
          ? `${(value / 2 ** 20).toFixed(0)} MiB`
          : String(round(value))
        : `\`${value}\``;
    const goal = goals[name];
    const verdict = goal ? (goal.met === null ? "" : goal.met ? "met" : "**missed**") : "";
    return `| \`${name}\` | ${shown} | ${goal?.text ?? ""} | ${verdict} |`;
  });
  const block = [
    `<!-- bench:${key}:begin -->`,
    `## ${title}`,
    "",
    "| figure | value | goal | |",
    "|---|---|---|---|",
    ...rows,
    "",
    ...notes.map((n) => `- ${n}`),
    `<!-- bench:${key}:end -->`,
  ].join("\n");
  let text = existsSync(file) ? readFileSync(file, "utf8") : HEADER;
  const pattern = new RegExp(`<!-- bench:${key}:begin -->[\\s\\S]*?<!-- bench:${key}:end -->`);
  if (pattern.test(text)) text = text.replace(pattern, block);
  else {
    const analysis = text.indexOf("\n## Analysis");
    text =
      analysis >= 0
        ? `${text.slice(0, analysis)}\n${block}\n${text.slice(analysis)}`
        : `${text.trimEnd()}\n\n${block}\n`;
  }
  writeFileSync(file, text);
}
