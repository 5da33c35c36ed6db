// npm run mutate [-- [--table] <scope>...]: StrykerJS over each scope of stryker.scopes.mjs, one after the other,
// then one table of scores per scope (--table: the table of the latest results only). Reports land in
// reports/mutation/<scope>.json (mutation-testing-report-schema) next to each scope's incremental file.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join, matchesGlob } from "node:path";
import { pathToFileURL } from "node:url";

interface Scope {
  mutate: string[];
  testFiles: string[];
}

interface Counts {
  killed: number;
  survived: number;
  timeout: number;
  noCoverage: number;
  compileErrors: number;
  runtimeErrors: number;
  ignored: number;
}

const root = join(import.meta.dirname, "..");
// A plain .mjs, read by Stryker's config too.
const scopesUrl = pathToFileURL(join(root, "stryker.scopes.mjs")).href;
const { SCOPES } = (await import(scopesUrl)) as { SCOPES: Record<string, Scope> };
const outDir = join(root, "reports/mutation");
/** Where stryker.config.mjs has Stryker's json reporter write a scope's report. */
const reportOf = (name: string): string => join(outDir, `${name}.json`);
/** The scope's incremental file: the same schema, also written when a run is interrupted (the mutants tested so far). */
const incrementalOf = (name: string): string => join(outDir, `${name}.incremental.json`);

/**
 * A scope's latest results: its report after a full run (Stryker writes the incremental file a moment later); the
 * incremental file alone after an interrupted run (the mutants tested so far, and reused ones).
 */
function latestResults(name: string): { file: string; partial: boolean } | null {
  const [report, incremental] = [reportOf(name), incrementalOf(name)].map((f) =>
    existsSync(f) ? statSync(f).mtimeMs : -1,
  );
  if (incremental < 0) return report < 0 ? null : { file: reportOf(name), partial: false };
  return { file: incrementalOf(name), partial: report < 0 || incremental - report > 60_000 };
}

function parseScopes(args: string[]): string[] {
  const known = Object.keys(SCOPES);
  const unknown = args.filter((a) => !known.includes(a));
  if (unknown.length > 0) {
    console.error(`unknown scope ${unknown.map((u) => JSON.stringify(u)).join(", ")}; scopes: ${known.join(", ")}`);
    process.exit(2);
  }
  return args.length > 0 ? args : known;
}

function runScope(name: string): boolean {
  console.log(`\n== ${name}: OPENLORA_MUTATE_SCOPE=${name} stryker run stryker.config.mjs`);
  const started = Date.now();
  const run = spawnSync("stryker", ["run", "stryker.config.mjs"], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, OPENLORA_MUTATE_SCOPE: name },
  });
  console.log(`== ${name}: ${((Date.now() - started) / 60_000).toFixed(1)} min, exit ${run.status ?? run.signal}`);
  return run.status === 0 && existsSync(reportOf(name));
}

/** Mutants per status in a report, counting only the scope's own files (an incremental file may hold others). */
function countMutants(reportFile: string, scope: Scope): Counts {
  const report = JSON.parse(readFileSync(reportFile, "utf8")) as {
    files: Record<string, { mutants: { status: string; static?: boolean }[] }>;
  };
  const counts: Counts = {
    killed: 0,
    survived: 0,
    timeout: 0,
    noCoverage: 0,
    compileErrors: 0,
    runtimeErrors: 0,
    ignored: 0,
  };
  const key: Record<string, keyof Counts> = {
    Killed: "killed",
    Survived: "survived",
    Timeout: "timeout",
    NoCoverage: "noCoverage",
    CompileError: "compileErrors",
    RuntimeError: "runtimeErrors",
    Ignored: "ignored",
  };
  for (const [path, file] of Object.entries(report.files)) {
    if (!scope.mutate.some((glob) => matchesGlob(path, glob))) continue;
    for (const mutant of file.mutants) {
      // Static mutants are left out (ignoreStatic, see stryker.config.mjs), also those an incremental file keeps
      // from a run before that. Pending (not yet run) is not a result.
      if (mutant.static === true) counts.ignored++;
      else if (mutant.status in key) counts[key[mutant.status]]++;
    }
  }
  return counts;
}

/** Stryker's score: detected (killed or timed out) over all valid mutants (compile errors excluded). */
function score(c: Counts): number {
  const valid = c.killed + c.timeout + c.survived + c.noCoverage;
  return valid === 0 ? 100 : (100 * (c.killed + c.timeout)) / valid;
}

// --table: only print the table of the scopes' latest results (no run).
const args = process.argv.slice(2);
const tableOnly = args.includes("--table");
const scopes = parseScopes(args.filter((a) => a !== "--table"));
mkdirSync(outDir, { recursive: true });
const failed = tableOnly ? [] : scopes.filter((name) => !runScope(name));
console.log(
  "\n| scope | killed | survived | timeout | no coverage | compile errors | score |\n|---|---|---|---|---|---|---|",
);
for (const name of scopes) {
  const latest = latestResults(name);
  if (latest === null) continue;
  const c = countMutants(latest.file, SCOPES[name]);
  const label = latest.partial ? `${name} (interrupted: tested so far)` : name;
  console.log(
    `| ${label} | ${c.killed} | ${c.survived} | ${c.timeout} | ${c.noCoverage} | ${c.compileErrors} | ${score(c).toFixed(1)}% |`,
  );
}
if (failed.length > 0) {
  console.error(`stryker failed for: ${failed.join(", ")}`);
  process.exit(1);
}
