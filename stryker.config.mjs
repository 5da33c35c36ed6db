// StrykerJS: mutation testing of the parts whose tests must be a net (issue 17). Not part of `npm test` (too
// slow); `npm run mutate` runs every scope below one after the other (scripts/mutate.ts), `npm run mutate --
// <scope>` one of them. Each scope mutates its own files and runs only the test files that are meant to catch
// those mutants, so a score says what those tests defend. Scores per scope are recorded in MUTATION.md.

/**
 * name -> files to mutate and the test files that defend them. Each scope keeps its own incremental file, so a
 * later run re-tests only mutants whose code or tests changed.
 */
export const SCOPES = {
  "engine-cpu": {
    mutate: ["node/engine/backend/cpu/**/*.ts"],
    testFiles: [
      "test/engine/cpu-backend.test.ts",
      "test/engine/prefill-reference.test.ts",
      "test/engine/cpu-ops.test.ts",
    ],
  },
  "engine-adapter": {
    mutate: ["node/engine/adapter/peft.ts", "node/engine/adapter/canonical.ts"],
    testFiles: [
      "test/engine/adapter.test.ts",
      "test/engine/adapter-canonical.test.ts",
      "test/engine/adapter-peft.test.ts",
    ],
  },
  "engine-runtime": {
    mutate: ["node/engine/runtime/scheduler.ts", "node/engine/runtime/adapter-store/**/*.ts"],
    testFiles: ["test/engine/scheduler.test.ts", "test/engine/adapter-store.test.ts"],
  },
  "engine-sampling": {
    mutate: ["node/engine/sampling/**/*.ts"],
    testFiles: ["test/engine/sampling.test.ts", "test/engine/sampling-rule.test.ts"],
  },
  "p2p-validation": {
    mutate: ["node/p2p/announce-validator.ts", "node/p2p/announcement.ts", "node/p2p/announcement-sig.ts"],
    testFiles: ["test/p2p/validator.test.ts", "test/p2p/announcement-wire.test.ts", "test/p2p/units.test.ts"],
  },
  "chain-vouchers": {
    mutate: ["node/chain/voucher.ts"],
    testFiles: ["test/contracts/voucher.test.ts", "test/contracts/chain.test.ts"],
  },
};

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  // Hardhat's simulator segfaults in worker threads (FACTS.md): processes, as in vitest.config.ts.
  vitest: { configFile: "vitest.config.ts", pool: "forks", related: false },
  checkers: ["typescript"],
  tsconfigFile: "tsconfig.stryker.json",
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: "perTest",
  // Static mutants (module-level initializers: constants, regexes, limits) are left out. With --testFiles, Stryker
  // 10.1.1 activates them after the module has loaded (stryker-js issues #6144, #6209), so they would be reported
  // survived whatever the tests do. MUTATION.md says which they are.
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
