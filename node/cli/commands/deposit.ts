// `openlora deposit --node <address> --amount <OPEN>`: escrows OPEN for one node (only its vouchers draw on it),
// approving the tokens first. Prints the transactions and the deposit after. Amounts are exact (18 decimals).
import { formatUnits } from "viem";
import { depositFor, type DepositOutcome } from "../../client/index.ts";
import { parseCommand, required, type CommandSpec } from "../args.ts";
import { requiredAddress } from "./client-options.ts";
import { chainHelp, chainOptions, connect, isoTime, parseAmount, tokens, type ChainAccess } from "./stake.ts";

const spec: CommandSpec = {
  summary: "Deposit OPEN in InferenceEscrow for one node: what your vouchers to that node draw on.",
  usage: "openlora deposit --node <address> --amount <OPEN> [--rpc <url>] [--deployment <path>] [options]",
  options: { node: { type: "string" }, amount: { type: "string" }, ...chainOptions },
  help: {
    node: "the node operator's address (deposits are per node)",
    amount: "OPEN to deposit, up to 18 decimals",
    ...chainHelp,
    json: "print one JSON object: transactions, the deposit after and your balance (OPEN as exact decimal strings)",
  },
};

export async function depositCommand(argv: string[], access: ChainAccess = {}): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const node = requiredAddress(args.values, "node");
  const amount = parseAmount(required(args.values, "amount"), "amount", false);
  const s = await connect(args.values, access);
  printDeposit(await depositFor(s.clients, s.deployment, node, amount), args.values.json === true);
}

/** The outcome of a deposit or withdrawal command, as text or one JSON object. */
export function printDeposit(o: DepositOutcome, json: boolean): void {
  const w = o.deposit.withdrawal;
  if (json) {
    console.log(
      JSON.stringify({
        transactions: o.transactions.map((t) => ({
          ...t,
          blockNumber: Number(t.blockNumber),
          gasUsed: t.gasUsed.toString(),
        })),
        node: o.node,
        deposit: {
          balance: formatUnits(o.deposit.balance, 18),
          available: formatUnits(o.deposit.available, 18),
          withdrawal: w && {
            amount: formatUnits(w.amount, 18),
            availableAt: isoTime(w.availableAt),
            expiresAt: isoTime(w.expiresAt),
          },
        },
        balance: formatUnits(o.balance, 18),
      }),
    );
    return;
  }
  const lines = o.transactions.map(
    (t) => `${t.step.padEnd(16)} ${t.hash} block ${t.blockNumber}, gas ${t.gasUsed}, ${t.status}`,
  );
  lines.push(
    `node             ${o.node}`,
    `deposit          ${tokens(o.deposit.balance)} (available to vouchers ${tokens(o.deposit.available)})`,
    `withdrawal       ${
      w
        ? `${tokens(w.amount)}, executable from ${isoTime(w.availableAt)} until ${isoTime(w.expiresAt)}`
        : "none pending"
    }`,
    `balance          ${tokens(o.balance)}`,
  );
  console.log(lines.join("\n"));
}
