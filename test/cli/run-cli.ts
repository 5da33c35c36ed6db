// The openlora executable in a child process, as a user runs it (Node 22 from node_modules, the checkout's code).
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

export const CLI = join(import.meta.dirname, "../../node/cli/openlora.ts");

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `openlora ...args`; resolves with its exit code and output whatever the code. */
export async function openlora(...args: string[]): Promise<CliRun> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], {
      env: { ...process.env, NODE_NO_WARNINGS: "1" },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
