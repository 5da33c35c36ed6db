// Issue 13, the step cost cap's knob on the command line: `node start --step-slowdown` refuses what the scheduler
// would refuse, by name, before any model is loaded.
import { describe, expect, it } from "vitest";
import { UsageError } from "../../node/cli/args.ts";
import { nodeCommand } from "../../node/cli/commands/node.ts";

async function refusal(value: string): Promise<string> {
  const error = await nodeCommand(["start", "--free", "--model", "/nonexistent", "--step-slowdown", value]).catch(
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UsageError);
  return (error as UsageError).message;
}

describe("node start --step-slowdown", () => {
  it("refuses a slowdown below 1 or not a number, naming the flag", async () => {
    expect(await refusal("0.5")).toBe("--step-slowdown must be at least 1, got 0.5");
    expect(await refusal("fast")).toBe('--step-slowdown must be a number, got "fast"');
  });
});
