#!/usr/bin/env node
// The `openlora` command: one subcommand per job, each with --help.
import { UsageError } from "./args.ts";
import { adapterCommand } from "./commands/adapter.ts";
import { demoCommand } from "./commands/demo.ts";
import { devnetCommand } from "./commands/devnet.ts";
import { generateCommand } from "./commands/generate.ts";
import { modelCommand } from "./commands/model.ts";
import { nodeCommand } from "./commands/node.ts";
import { stakeCommand, unstakeCommand, withdrawStakeCommand } from "./commands/stake.ts";
import { walletCommand } from "./commands/wallet.ts";

const commands: Record<string, { run: (argv: string[]) => Promise<void>; summary: string }> = {
  generate: { run: generateCommand, summary: "generate text from a model, optionally with a LoRA adapter" },
  adapter: { run: adapterCommand, summary: "inspect or create PEFT LoRA adapters" },
  model: { run: modelCommand, summary: "create random-weight models of a real shape (GGUF)" },
  node: { run: nodeCommand, summary: "run a node: OpenAI-compatible API, usage ledger, payments and settlement" },
  devnet: { run: devnetCommand, summary: "the main job (npm start): chain, three paid nodes, payers, settlement, claims" },
  demo: { run: demoCommand, summary: "the embedded model telling a story with no adapter and with each demo adapter" },
  wallet: { run: walletCommand, summary: "create, import or show the operator key (encrypted keystore)" },
  stake: { run: stakeCommand, summary: "stake OPEN in NodeRegistry and bind the peer id and API endpoint" },
  unstake: { run: unstakeCommand, summary: "move bonded stake into unbonding" },
  "withdraw-stake": { run: withdrawStakeCommand, summary: "withdraw stake whose unbonding period has passed" },
};

function help(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(14)} ${c.summary}`);
  return `openlora: a multi-tenant LoRA serving node\n\nUsage: openlora <command> [options]\n\nCommands:\n${lines.join("\n")}\n\nRun openlora <command> --help for a command's options.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(help());
    return 0;
  }
  const command = commands[name];
  if (!command) {
    console.error(`openlora: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`openlora ${name}: ${error.message}`);
      return 2;
    }
    console.error(`openlora ${name}: ${(error as Error).message}`);
    if (process.env.OPENLORA_DEBUG) console.error(error);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
