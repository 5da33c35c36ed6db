import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // Hardhat's simulator segfaults when a second worker thread loads it: use processes.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
