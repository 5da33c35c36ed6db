// `openlora devnet` (what `npm start` runs): the whole product on one machine. Starts a Hardhat chain and three paid
// nodes, plays paid requests, settles, has the contributors claim, prints the summary, and keeps the chain and the
// nodes up until Ctrl-C. With --once it exits after the summary (with --json: one JSON object on stdout).
import { existsSync, readdirSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BACKEND_CHOICES, type BackendChoice } from "../../engine/index.ts";
import { numberOption, parseCommand, stringOption, UsageError, type CommandSpec } from "../args.ts";
import { startDevnet } from "../devnet/devnet.ts";
import { untilSignal } from "../signals.ts";
import { summaryText } from "../devnet/report.ts";
import { summaryJson } from "../devnet/summary.ts";

const spec: CommandSpec = {
  summary:
    "A local network in one command: Hardhat chain, contracts, three staked nodes, paid requests from two payers, settlement, contributor claims, and a summary that balances to the wei.",
  usage: "openlora devnet [--once] [--json] [--backend cpu|auto|simd|webgpu] [--data-dir <dir>] [--rpc-port N]",
  options: {
    once: { type: "boolean" },
    json: { type: "boolean" },
    backend: { type: "string" },
    "data-dir": { type: "string" },
    "rpc-port": { type: "string" },
    "settle-interval": { type: "string" },
  },
  help: {
    once: "exit after the summary instead of keeping the chain and the nodes up",
    json: "print the summary as one JSON object on stdout (amounts in wei, as decimal strings)",
    backend: `${BACKEND_CHOICES.join(" | ")} (default auto: webgpu on a GPU, else simd; the three nodes split the cores)`,
    "data-dir":
      "an empty or new folder for the nodes' data and the deployment file (default: a temporary folder, removed at exit)",
    "rpc-port": "the chain's JSON-RPC port on 127.0.0.1 (default: a free one)",
    "settle-interval": "seconds the nodes let new vouchers wait before settling them on their own (default 30)",
  },
};

export async function devnetCommand(argv: string[]): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const { values } = args;
  const backend = (stringOption(values, "backend") ?? "auto") as BackendChoice;
  if (!BACKEND_CHOICES.includes(backend)) {
    throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(", ")}, got "${backend}"`);
  }
  const rpcPort =
    stringOption(values, "rpc-port") === undefined
      ? undefined
      : numberOption(values, "rpc-port", 0, { integer: true, min: 1, max: 65535 });
  const settleIntervalS = numberOption(values, "settle-interval", 30, { min: 1 });
  const given = stringOption(values, "data-dir");
  if (given !== undefined && existsSync(given) && readdirSync(given).length > 0) {
    throw new UsageError(
      `--data-dir ${given} is not empty: the devnet starts a new chain, so its nodes need new ledgers`,
    );
  }
  const dataDir = given ?? (await mkdtemp(join(tmpdir(), "openlora-devnet-")));
  const removeData = (): Promise<void> =>
    given === undefined ? rm(dataDir, { recursive: true, force: true }) : Promise.resolve();
  const progress = (line: string): void => void process.stderr.write(`${line}\n`);

  // A signal while the devnet starts ends the command at once: exiting kills the chain (hardhat-chain.ts), and a
  // temporary data folder goes with it.
  const early = (signal: NodeJS.Signals): void => {
    if (given === undefined) rmSync(dataDir, { recursive: true, force: true });
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", early);
  process.once("SIGTERM", early);
  let devnet;
  try {
    devnet = await startDevnet({ dataDir, backend, rpcPort, settleIntervalS, progress });
  } catch (error) {
    await removeData();
    throw error;
  } finally {
    process.off("SIGINT", early);
    process.off("SIGTERM", early);
  }
  const { summary } = devnet;
  console.log(values.json === true ? summaryJson(summary) : summaryText(summary));
  if (values.once === true) {
    await devnet.stop();
    await removeData();
    if (!summary.balanced) process.exitCode = 1;
    endAfterCleanStop();
    return;
  }
  process.stderr.write(
    [
      "",
      "The devnet keeps running. Status pages:",
      ...devnet.nodes.map((n) => `  ${n.plan.name}  ${n.url}/   (OpenAI-compatible API at ${n.url}/v1)`),
      `Chain JSON-RPC: ${devnet.rpcUrl}   deployment: ${devnet.deploymentsDir}`,
      "Press Ctrl-C to stop.",
      "",
    ].join("\n"),
  );
  await untilSignal();
  process.stderr.write("stopping the nodes and the chain ...\n");
  // A second Ctrl-C ends at once.
  process.once("SIGINT", () => process.exit(130));
  process.once("SIGTERM", () => process.exit(143));
  await devnet.stop();
  await removeData();
  process.stderr.write("stopped\n");
  endAfterCleanStop();
}

/**
 * Everything is stopped; a timer or socket some part failed to close must not keep the command from ending. (Seen:
 * viem's event watchers uninstall their filter before they stop polling, so a watcher whose uninstall request met
 * the chain already stopped polls the dead chain forever.)
 */
function endAfterCleanStop(): void {
  setTimeout(() => process.exit(), 2_000).unref();
}
