// vitest's configuration under StrykerJS (stryker.config.mjs): the project's, with three changes for a run that
// repeats the same test files hundreds of times.
// - No global set-up: it compiles the contracts, which in a Stryker sandbox (another folder) is a fresh solc run of
//   minutes on every start. The sandbox gets the built artifacts as they are.
// - Modules stay loaded between the files of one run (isolate: false): Stryker switches mutants through a global, so
//   a run needs no fresh import of viem, libp2p or the model files for each file.
// - Files run in the order the scope lists them (stryker.scopes.mjs), fastest killers first. Stryker runs vitest
//   with bail 1: the first failing test ends the run and its worker, so a mutant the first file kills never waits
//   for the slower files. vitest's own order would run the slowest file first.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";
import base from "./vitest.config.ts";

const { globalSetup: _compiledOnce, ...test } = base.test ?? {};

// A plain .mjs, read by stryker.config.mjs too; the scope is named by scripts/mutate.ts.
const scopesUrl = pathToFileURL(join(import.meta.dirname, "stryker.scopes.mjs")).href;
const { SCOPES } = (await import(scopesUrl)) as { SCOPES: Record<string, { testFiles: string[] }> };
const scopeFiles = SCOPES[process.env.OPENLORA_MUTATE_SCOPE ?? ""]?.testFiles ?? [];

/** The scope's test files in the order it lists them (files it does not list last). */
class ScopeOrder extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (spec: TestSpecification): number => {
      const at = scopeFiles.findIndex((file) => spec.moduleId.endsWith(file));
      return at < 0 ? scopeFiles.length : at;
    };
    return [...files].sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({ ...base, test: { ...test, isolate: false, sequence: { sequencer: ScopeOrder } } });
