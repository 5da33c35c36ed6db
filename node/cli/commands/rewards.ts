// `openlora rewards [--claim]`: per listing whose attribution names you, your weight, what your share of its
// contributor pool lets you claim now and what you claimed before; --claim takes everything claimable in one
// transaction. Without --claim only your address is read from the keystore (no password).
import { formatUnits, type Address } from "viem";
import { claimRewards, rewardsOf, type RewardLine } from "../../client/index.ts";
import { parseCommand, type CommandSpec, type ParsedCommand } from "../args.ts";
import { addressOption } from "./client-options.ts";
import { chainHelp, chainOptions, connect, connectRead, tokens, type ChainAccess } from "./stake.ts";
import { keystoreAddress, keystorePath } from "./wallet.ts";

const spec: CommandSpec = {
  summary: "Show what your contributor shares can claim, per listing; --claim claims it all.",
  usage: "openlora rewards [--claim] [--address <address>] [--rpc <url>] [--deployment <path>] [options]",
  options: { claim: { type: "boolean" }, address: { type: "string" }, ...chainOptions },
  help: {
    claim: "claim everything claimable (one transaction, from the keystore's key)",
    address: "show another contributor's rewards (default: the keystore's address)",
    ...chainHelp,
    json: "print one JSON object: per listing weight, claimable and claimed (OPEN, exact), and the claim",
  },
};

export async function rewardsCommand(argv: string[], access: ChainAccess = {}): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const { values } = args;
  const json = values.json === true;
  if (values.claim === true) {
    const s = await connect(values, access);
    const before = await rewardsOf(s.clients.public, s.deployment, s.operator);
    const claimable = before.filter((r) => r.claimable > 0n);
    const { transaction, amount } = await claimRewards(
      s.clients,
      s.deployment,
      claimable.map((r) => r.listingId),
    );
    const after = await rewardsOf(s.clients.public, s.deployment, s.operator);
    if (json) {
      console.log(
        JSON.stringify({
          contributor: s.operator,
          claimed: formatUnits(amount, 18),
          transaction: {
            ...transaction,
            blockNumber: Number(transaction.blockNumber),
            gasUsed: transaction.gasUsed.toString(),
          },
          listings: after.map(lineJson),
        }),
      );
      return;
    }
    console.log(
      `claim            ${transaction.hash} block ${transaction.blockNumber}, ` +
        `gas ${transaction.gasUsed}, ${transaction.status}`,
    );
    console.log(`claimed          ${tokens(amount)} from ${claimable.length} listing(s)`);
    printLines(s.operator, after);
    return;
  }
  const contributor = await whoAmI(values);
  const { client, deployment } = await connectRead(values, access);
  const lines = await rewardsOf(client, deployment, contributor);
  if (json) console.log(JSON.stringify({ contributor, listings: lines.map(lineJson) }));
  else printLines(contributor, lines);
}

async function whoAmI(values: ParsedCommand["values"]): Promise<Address> {
  return addressOption(values, "address") ?? keystoreAddress(keystorePath(values));
}

function lineJson(r: RewardLine) {
  return {
    listingId: r.listingId,
    contentHash: r.contentHash,
    registrant: r.registrant,
    uri: r.uri,
    weightBps: r.weightBps,
    claimable: formatUnits(r.claimable, 18),
    claimed: formatUnits(r.claimed, 18),
  };
}

function printLines(contributor: Address, lines: RewardLine[]): void {
  if (lines.length === 0) {
    console.log(`${contributor} is a contributor of no listing`);
    return;
  }
  const total = lines.reduce((sum, r) => sum + r.claimable, 0n);
  console.log(`contributor      ${contributor}`);
  for (const r of lines) {
    console.log(
      `listing          ${r.listingId}\n  adapter        ${r.contentHash}\n` +
        `  weight         ${r.weightBps} bps (${r.weightBps / 100}%)\n` +
        `  claimable      ${tokens(r.claimable)}\n  claimed        ${tokens(r.claimed)}`,
    );
  }
  console.log(`claimable        ${tokens(total)} in all${total > 0n ? " (openlora rewards --claim)" : ""}`);
}
