// StrykerJS: mutation testing of the parts whose tests must be a net (issue 17). Not part of `npm test` (too
// slow); `npm run mutate` runs every scope of stryker.scopes.mjs one after the other (scripts/mutate.ts), `npm run mutate --
// <scope>` one of them. Each scope mutates its own files and runs only the test files that are meant to catch
// those mutants, so a score says what those tests defend. Scores per scope are recorded in MUTATION.md.

import { SCOPES } from "./stryker.scopes.mjs";

// The scope to run, named by scripts/mutate.ts (OPENLORA_MUTATE_SCOPE=<scope> npx stryker run stryker.config.mjs
// does the same by hand). Its files, incremental file and report all carry its name, so scopes can run side by side.
const scopeName = process.env.OPENLORA_MUTATE_SCOPE;
if (scopeName === undefined || !Object.hasOwn(SCOPES, scopeName)) {
  throw new Error(`OPENLORA_MUTATE_SCOPE must name a scope: ${Object.keys(SCOPES).join(", ")} (got ${scopeName})`);
}
const scope = SCOPES[scopeName];

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  mutate: scope.mutate,
  testFiles: scope.testFiles,
  incrementalFile: `reports/mutation/${scopeName}.incremental.json`,
  jsonReporter: { fileName: `reports/mutation/${scopeName}.json` },
  testRunner: "vitest",
  // The scope's pool (stryker.scopes.mjs says why); related: false, as testFiles names the tests.
  vitest: { configFile: "vitest.stryker.config.ts", pool: scope.pool, related: false },
  // vitest strips types without checking them, so the sandbox's files need no `// @ts-nocheck` (Stryker's default
  // adds one to every file, which also changes files that tests read as text, like node/chain/generated).
  disableTypeChecks: false,
  checkers: ["typescript"],
  tsconfigFile: "tsconfig.stryker.json",
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: "perTest",
  // Static mutants (module-level initializers: constants, regexes, limits) are left out. With testFiles, Stryker
  // 10.1.1 activates them after the module has loaded (stryker-js issues #6144, #6209), so they would be reported
  // survived whatever the tests do. scripts/mutate.ts counts them as ignored, also those older incremental files hold.
  ignoreStatic: true,
  // The machine is shared by a team: one test runner, one checker.
  concurrency: 1,
  incremental: true,
  reporters: ["clear-text", "json", "progress-append-only"],
  // A test file like the 1,000-adapter one takes tens of seconds on two loaded cores.
  timeoutMS: 60_000,
  timeoutFactor: 2,
  dryRunTimeoutMinutes: 30,
  // Never copied into the sandbox: caches, benchmark output, local data.
  ignorePatterns: [".cache", "bench", "coverage", "data", ".gl", ".device", "reports"],
  cleanTempDir: "always",
  thresholds: { high: 90, low: 80, break: null },
};
