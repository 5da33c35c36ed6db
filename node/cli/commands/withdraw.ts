// `openlora withdraw --node <address> [--amount <OPEN>]`: asks to take a deposit back. The request matures after
// the escrow's withdrawal delay (so the node can settle what it was paid first) and must then be executed with
// `--execute` within the withdrawal window, else it lapses; `--cancel` drops it.
import { cancelWithdrawal, executeWithdrawal, requestWithdrawal } from "../../client/index.ts";
import { parseCommand, stringOption, UsageError, type CommandSpec } from "../args.ts";
import { requiredAddress } from "./client-options.ts";
import { printDeposit } from "./deposit.ts";
import { chainHelp, chainOptions, connect, parseAmount, type ChainAccess } from "./stake.ts";

const spec: CommandSpec = {
  summary:
    "Withdraw a deposit: request it (it matures after the escrow's delay), then --execute it in time, or --cancel.",
  usage: "openlora withdraw --node <address> [--amount <OPEN> | --execute | --cancel] [--rpc <url>] [options]",
  options: {
    node: { type: "string" },
    amount: { type: "string" },
    execute: { type: "boolean" },
    cancel: { type: "boolean" },
    ...chainOptions,
  },
  help: {
    node: "the node operator's address the deposit is for",
    amount: "OPEN to request, up to 18 decimals (default: the whole deposit)",
    execute: "execute the matured request (pays it out)",
    cancel: "cancel the pending request",
    ...chainHelp,
    json: "print one JSON object: transactions, the deposit after and your balance (OPEN as exact decimal strings)",
  },
};

export async function withdrawCommand(argv: string[], access: ChainAccess = {}): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const { values } = args;
  const node = requiredAddress(values, "node");
  const amountText = stringOption(values, "amount");
  const modes = [
    amountText !== undefined && "--amount",
    values.execute === true && "--execute",
    values.cancel === true && "--cancel",
  ];
  if (modes.filter(Boolean).length > 1) throw new UsageError(`give one of ${modes.filter(Boolean).join(", ")}`);
  const amount = amountText === undefined ? undefined : parseAmount(amountText, "amount", false);
  const s = await connect(values, access);
  const outcome =
    values.execute === true
      ? await executeWithdrawal(s.clients, s.deployment, node)
      : values.cancel === true
        ? await cancelWithdrawal(s.clients, s.deployment, node)
        : await requestWithdrawal(s.clients, s.deployment, node, amount);
  printDeposit(outcome, values.json === true);
}
