// vitest's configuration under StrykerJS (stryker.config.mjs): the project's, with two changes for a run that
// repeats the same test files hundreds of times.
// - No global set-up: it compiles the contracts, which in a Stryker sandbox (another folder) is a fresh solc run of
//   minutes on every start. The sandbox gets the built artifacts as they are.
// - Modules stay loaded between runs (isolate: false): Stryker switches mutants through a global, so a run needs
//   no fresh import of viem, libp2p or the model files, which on two loaded cores costs more than the tests.
import { defineConfig } from "vitest/config";
import base from "./vitest.config.ts";

const { globalSetup: _compiledOnce, ...test } = base.test ?? {};

export default defineConfig({ ...base, test: { ...test, isolate: false } });
