// npm run mutate [-- <scope>...]: StrykerJS over each scope of stryker.config.mjs, one after the other (the
// scopes are in stryker.scopes.mjs), then one table of scores per scope. Reports land in
// reports/mutation/<scope>.json (mutation-testing-report-schema) next to each scope's incremental file.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
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

function countMutants(reportFile: string): Counts {
  const report = JSON.parse(readFileSync(reportFile, "utf8")) as {
    files: Record<string, { mutants: { status: string }[] }>;
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
  for (const file of Object.values(report.files)) {
    for (const mutant of file.mutants) counts[key[mutant.status]]++;
  }
  return counts;
}

/** Stryker's score: detected (killed or timed out) over all valid mutants (compile errors excluded). */
function score(c: Counts): number {
  const valid = c.killed + c.timeout + c.survived + c.noCoverage;
  return valid === 0 ? 100 : (100 * (c.killed + c.timeout)) / valid;
}

const scopes = parseScopes(process.argv.slice(2));
mkdirSync(outDir, { recursive: true });
const failed = scopes.filter((name) => !runScope(name));
console.log(
  "\n| scope | killed | survived | timeout | no coverage | compile errors | score |\n|---|---|---|---|---|---|---|",
);
for (const name of scopes) {
  const file = reportOf(name);
  if (!existsSync(file)) continue;
  const c = countMutants(file);
  console.log(
    `| ${name} | ${c.killed} | ${c.survived} | ${c.timeout} | ${c.noCoverage} | ${c.compileErrors} | ${score(c).toFixed(1)}% |`,
  );
}
if (failed.length > 0) {
  console.error(`stryker failed for: ${failed.join(", ")}`);
  process.exit(1);
}
