#!/usr/bin/env node
// The `openlora` command: one subcommand per job, each with --help.
import { UsageError } from "./args.ts";

// Each command's module is loaded when it runs (import() in its entry), so a start loads only what it needs.
type Run = (argv: string[]) => Promise<void>;
const commands: Record<string, { run: Run; summary: string }> = {
  generate: {
    run: async (argv) => (await import("./commands/generate.ts")).generateCommand(argv),
    summary: "generate text from a model, optionally with a LoRA adapter",
  },
  adapter: {
    run: async (argv) => (await import("./commands/adapter.ts")).adapterCommand(argv),
    summary: "inspect, create or register (on chain, with contributors) PEFT LoRA adapters",
  },
  model: {
    run: async (argv) => (await import("./commands/model.ts")).modelCommand(argv),
    summary: "create random-weight models of a real shape (GGUF)",
  },
  node: {
    run: async (argv) => (await import("./commands/node.ts")).nodeCommand(argv),
    summary: "run a node: OpenAI-compatible API, usage ledger, payments and settlement",
  },
  devnet: {
    run: async (argv) => (await import("./commands/devnet.ts")).devnetCommand(argv),
    summary: "the main job (npm start): chain, three paid nodes, payers, settlement, claims",
  },
  demo: {
    run: async (argv) => (await import("./commands/demo.ts")).demoCommand(argv),
    summary: "the embedded model telling a story with no adapter and with each demo adapter",
  },
  wallet: {
    run: async (argv) => (await import("./commands/wallet.ts")).walletCommand(argv),
    summary: "create, import or show the operator key (encrypted keystore)",
  },
  stake: {
    run: async (argv) => (await import("./commands/stake.ts")).stakeCommand(argv),
    summary: "stake OPEN in NodeRegistry and bind the peer id and API endpoint",
  },
  unstake: {
    run: async (argv) => (await import("./commands/stake.ts")).unstakeCommand(argv),
    summary: "move bonded stake into unbonding",
  },
  "withdraw-stake": {
    run: async (argv) => (await import("./commands/stake.ts")).withdrawStakeCommand(argv),
    summary: "withdraw stake whose unbonding period has passed",
  },
  deposit: {
    run: async (argv) => (await import("./commands/deposit.ts")).depositCommand(argv),
    summary: "deposit OPEN in the escrow for a node, to pay its requests",
  },
  withdraw: {
    run: async (argv) => (await import("./commands/withdraw.ts")).withdrawCommand(argv),
    summary: "request a withdrawal of a deposit, execute it after the delay, or cancel it",
  },
  infer: {
    run: async (argv) => (await import("./commands/infer.ts")).inferCommand(argv),
    summary: "send a paid request: routed to the best node, paid by voucher, receipt verified",
  },
  gateway: {
    run: async (argv) => (await import("./commands/gateway.ts")).gatewayCommand(argv),
    summary: "a local OpenAI-compatible endpoint that routes, pays and verifies for any app",
  },
  rewards: {
    run: async (argv) => (await import("./commands/rewards.ts")).rewardsCommand(argv),
    summary: "what your contributor shares can claim, per listing; --claim takes it",
  },
  usage: {
    run: async (argv) => (await import("./commands/usage.ts")).usageCommand(argv),
    summary: "an adapter's usage by hour, from a node's ledger",
  },
  status: {
    run: async (argv) => (await import("./commands/status.ts")).statusCommand(argv),
    summary: "chain, stake, deposits, channels, unsettled amounts and spending limits",
  },
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
