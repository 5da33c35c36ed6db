// Issue 13, item 15: a --seed beyond 32 bits (2^32, 1e300) was cut to 32 bits and silently became seed 0.
// Every command that takes a seed refuses it by name before doing any work (no model is loaded).
import { describe, expect, it } from "vitest";
import { UsageError } from "../../node/cli/args.ts";
import { adapterCommand } from "../../node/cli/commands/adapter.ts";
import { generateCommand } from "../../node/cli/commands/generate.ts";
import { modelCommand } from "../../node/cli/commands/model.ts";

const SEEDS = ["4294967296", "1e300"];
const MODEL_SHAPE = [
  "--layers",
  "1",
  "--dim",
  "8",
  "--hidden",
  "8",
  "--heads",
  "1",
  "--kv-heads",
  "1",
  "--vocab",
  "300",
];

async function refusal(run: Promise<void>): Promise<string> {
  const error = await run.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(UsageError);
  return (error as UsageError).message;
}

describe("--seed bounds (item 15)", () => {
  it("generate, adapter new and model new refuse seeds of 2^32 and above, naming the flag and the limit", async () => {
    for (const seed of SEEDS) {
      const commands = [
        generateCommand(["--model", "/nonexistent", "--prompt", "x", "--seed", seed]),
        adapterCommand(["new", "--model", "/nonexistent", "--rank", "4", "--seed", seed, "--out", "/nonexistent"]),
        modelCommand(["new", ...MODEL_SHAPE, "--seed", seed, "--out", "/nonexistent"]),
      ];
      for (const run of commands) expect(await refusal(run)).toBe(`--seed must be at most 4294967295, got ${seed}`);
    }
  });
});
