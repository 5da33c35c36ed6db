// The scopes of `npm run mutate` (issue 17): each mutates its own files and runs only the test files that are meant
// to catch those mutants, so a score says what those tests defend. Read by stryker.config.mjs (the scope a run
// mutates) and scripts/mutate.ts (the scopes it runs). Scores per scope are recorded in MUTATION.md.
// One file (or one small folder) per scope: Stryker writes its report only at the end of a run, and on two shared
// cores a run of several hundred mutants takes hours, so smaller scopes land their figures one by one.

/**
 * name -> files to mutate, the test files that defend them (run in this order: vitest.stryker.config.ts), and
 * vitest's pool for them. Each scope keeps its own
 * incremental file, so a later run re-tests only mutants whose code or tests changed.
 * pool: Stryker's vitest runner starts a fresh worker for every mutant (vitest stops the pool's workers at the end
 * of each run), and a worker thread starts faster than a process. Processes ("forks") where a test needs one:
 * Hardhat's simulator segfaults in worker threads (FACTS.md), and adapter.test.ts counts the process's open files
 * (/proc/self/fd), which in a thread would include the files vitest's main thread has open at that moment.
 */
export const SCOPES = {
  // The cpu scopes run the operators against their definitions and the backend object on a tiny model. The
  // whole-model tests (cpu-backend: llama2.c's 256 greedy tokens; prefill-reference) pass the 60 s test timeout
  // with the mutants' switches in every inner loop, and run in npm test.
  "engine-cpu-ops": {
    mutate: ["node/engine/backend/cpu/ops.ts"],
    pool: "threads",
    testFiles: [
      "test/engine/cpu-ops.test.ts",
      "test/engine/cpu-ops-families.test.ts",
      "test/engine/cpu-ops-bounds.test.ts",
    ],
  },
  "engine-cpu-backend": {
    mutate: ["node/engine/backend/cpu/cpu-backend.ts"],
    pool: "threads",
    // cpu-backend-lora: the LoRA path, batches and refused steps on a tiny model; family-features: each family's
    // departures from LLaMA against transformers' forward (hf-reference.ts) on tiny models. Fastest first.
    testFiles: [
      "test/engine/cpu-backend-lora.test.ts",
      "test/engine/cpu-ops.test.ts",
      "test/engine/families/family-features.test.ts",
    ],
  },
  "engine-adapter-peft": {
    mutate: ["node/engine/adapter/peft.ts"],
    pool: "forks",
    testFiles: ["test/engine/adapter-peft.test.ts", "test/engine/adapter.test.ts"],
  },
  "engine-adapter-canonical": {
    mutate: ["node/engine/adapter/canonical.ts"],
    pool: "forks",
    testFiles: ["test/engine/adapter-canonical.test.ts", "test/engine/adapter.test.ts"],
  },
  // The scheduler's and the store's unit tests; the engine-level ones (scheduler-engine, runtime) take minutes per
  // mutant here and run in npm test.
  "engine-scheduler": {
    mutate: ["node/engine/runtime/scheduler.ts"],
    pool: "threads",
    // scheduler-cap: the token cap per step among owners (planShared).
    testFiles: [
      "test/engine/scheduler.test.ts",
      "test/engine/scheduler-owners.test.ts",
      "test/engine/scheduler-cap.test.ts",
    ],
  },
  "engine-adapter-store": {
    mutate: ["node/engine/runtime/adapter-store/**/*.ts"],
    pool: "threads",
    testFiles: ["test/engine/adapter-store.test.ts"],
  },
  "engine-sampling": {
    mutate: ["node/engine/sampling/**/*.ts"],
    pool: "threads",
    testFiles: ["test/engine/sampling.test.ts", "test/engine/sampling-rule.test.ts"],
  },
  "p2p-validation": {
    mutate: ["node/p2p/announce-validator.ts", "node/p2p/announcement.ts", "node/p2p/announcement-sig.ts"],
    pool: "threads",
    testFiles: ["test/p2p/validator.test.ts", "test/p2p/announcement-wire.test.ts", "test/p2p/units.test.ts"],
  },
  "chain-vouchers": {
    mutate: ["node/chain/voucher.ts"],
    pool: "forks",
    testFiles: ["test/contracts/voucher.test.ts", "test/contracts/chain.test.ts"],
  },
};
