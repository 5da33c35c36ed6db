// `openlora status`: where you stand. The chain and its contracts; your balance; your stake (if you run a node);
// your deposits per node; your channels as your client recorded them (signed, consumed per the node's last
// receipt) beside what the escrow settled, so the unsettled amount is what a node may still claim; your spending
// of the last hour against the gateway's limits; and disputed receipts. Read only: no keystore password.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { formatEther, formatUnits, type Address } from "viem";
import { getContracts } from "../../chain/index.ts";
import { depositsOf, PayerState } from "../../client/index.ts";
import { parseCommand, UsageError, type CommandSpec, type ParsedCommand } from "../args.ts";
import { addressOption, clientDir } from "./client-options.ts";
import { GATEWAY_FILE, type GatewayFile } from "./gateway.ts";
import { chainHelp, connectRead, isoTime, tokens, type ChainAccess } from "./stake.ts";
import { keystoreAddress, keystorePath } from "./wallet.ts";

const spec: CommandSpec = {
  summary: "Show the chain, your stake, deposits, channels, unsettled amounts, spending and limits.",
  usage: "openlora status [--address <address>] [--rpc <url>] [--deployment <path>] [--data-dir <dir>] [--json]",
  options: {
    address: { type: "string" },
    rpc: { type: "string" },
    deployment: { type: "string" },
    "data-dir": { type: "string" },
    keystore: { type: "string" },
    json: { type: "boolean" },
  },
  help: {
    address: "whose status (default: the keystore's address)",
    rpc: chainHelp.rpc,
    deployment: chainHelp.deployment,
    "data-dir": "your data folder (default ~/.openlora): keystore.json, and client/ with your channels' state",
    keystore: chainHelp.keystore,
    json: "print one JSON object (OPEN amounts as exact decimal strings, wei where named so)",
  },
};

const HOUR_MS = 3600_000;

export async function statusCommand(argv: string[], access: ChainAccess = {}): Promise<void> {
  const args = parseCommand(spec, argv);
  if (!args) return;
  const { values } = args;
  const me = await whoAmI(values);
  const { client, deployment, rpc } = await connectRead(values, access);
  const c = getContracts({ public: client }, deployment.contracts);
  const [block, balance, eth, node, active, minStake, deposits] = await Promise.all([
    client.getBlock(),
    c.token.read.balanceOf([me]),
    client.getBalance({ address: me }),
    c.nodeRegistry.read.nodeOf([me]),
    c.nodeRegistry.read.isActive([me]),
    c.nodeRegistry.read.minStake(),
    depositsOf(client, deployment, me),
  ]);
  const state = new PayerState(clientDir(values), {
    chainId: deployment.chainId,
    escrow: deployment.contracts.InferenceEscrow,
    payer: me,
  });
  const { channels, spend, disputes } = await state.read();
  const settled = await Promise.all(channels.map((ch) => c.escrow.read.settled([me, ch.node, ch.listingId])));
  const lastHour = spend.filter((e) => e.at >= Date.now() - HOUR_MS).reduce((sum, e) => sum + e.amount, 0n);
  const gateway = await gatewayInfo(clientDir(values));
  const open = (wei: bigint): string => formatUnits(wei, 18);
  const report = {
    chain: {
      chainId: deployment.chainId,
      rpc,
      block: Number(block.number),
      time: isoTime(block.timestamp),
      contracts: deployment.contracts,
    },
    account: { address: me, balance: open(balance), eth: formatEther(eth) },
    stake: {
      stake: open(node.stake),
      unbonding: open(node.unbonding),
      unbondingEnd: node.unbondingEnd === 0n ? null : isoTime(BigInt(node.unbondingEnd)),
      active,
      minStake: open(minStake),
      endpoint: node.endpoint,
    },
    deposits: deposits.map((d) => ({
      node: d.node,
      balance: open(d.balance),
      available: open(d.available),
      withdrawal: d.withdrawal && {
        amount: open(d.withdrawal.amount),
        availableAt: isoTime(d.withdrawal.availableAt),
        expiresAt: isoTime(d.withdrawal.expiresAt),
      },
    })),
    channels: channels.map((ch, i) => ({
      node: ch.node,
      listingId: ch.listingId,
      signed: open(ch.signed),
      consumed: open(ch.consumed),
      settled: open(settled[i]),
      // What the node may still settle: the highest voucher signed beyond what the escrow paid.
      unsettled: open(ch.signed > settled[i] ? ch.signed - settled[i] : 0n),
      requests: ch.requests,
    })),
    spending: {
      lastHour: open(lastHour),
      perRequest: gateway?.limits.perRequest ? open(BigInt(gateway.limits.perRequest)) : null,
      perHour: gateway?.limits.perHour ? open(BigInt(gateway.limits.perHour)) : null,
      gateway: gateway && { url: gateway.url, pid: gateway.pid, running: gateway.running },
    },
    disputes: disputes.map((d) => ({
      ...d,
      at: new Date(d.at).toISOString(),
      voucherAmount: d.voucherAmount.toString(),
    })),
    stateFile: state.path,
  };
  if (values.json === true) {
    console.log(JSON.stringify(report));
    return;
  }
  const lines = [
    `chain            ${report.chain.chainId} at ${rpc}, block ${report.chain.block} (${report.chain.time})`,
    `escrow           ${deployment.contracts.InferenceEscrow}`,
    `account          ${me}: ${tokens(balance)}, ${report.account.eth} ETH`,
    `stake            ${tokens(node.stake)} (${active ? "active" : "inactive"}, minimum ${tokens(minStake)})` +
      (node.unbonding > 0n ? `, ${tokens(node.unbonding)} unbonding until ${report.stake.unbondingEnd}` : ""),
  ];
  if (deposits.length === 0) lines.push("deposits         none (openlora deposit --node <address> --amount <OPEN>)");
  for (const d of deposits) {
    lines.push(
      `deposit          node ${d.node}: ${tokens(d.balance)}, available ${tokens(d.available)}` +
        (d.withdrawal
          ? `, withdrawal of ${tokens(d.withdrawal.amount)} from ${isoTime(d.withdrawal.availableAt)}`
          : ""),
    );
  }
  if (channels.length === 0) lines.push("channels         none yet");
  for (const [i, ch] of report.channels.entries()) {
    lines.push(
      `channel          node ${ch.node} listing ${ch.listingId}\n` +
        `                 signed ${ch.signed}, consumed ${ch.consumed}, settled ${ch.settled}, ` +
        `unsettled ${ch.unsettled} OPEN (${channels[i].requests} requests)`,
    );
  }
  const limit = (v: string | null): string => (v === null ? "none" : `${v} OPEN`);
  const running = gateway && `${gateway.url} (${gateway.running ? "running" : "not running"}, pid ${gateway.pid})`;
  lines.push(
    `spending         ${report.spending.lastHour} OPEN in the last hour; ` +
      `limits ${limit(report.spending.perRequest)} per request, ${limit(report.spending.perHour)} per hour`,
    `gateway          ${running || "not running"}`,
    `disputes         ${disputes.length === 0 ? "none" : disputes.map((d) => `${d.code} by ${d.node}`).join("; ")}`,
    `state file       ${state.path}`,
  );
  console.log(lines.join("\n"));
}

async function whoAmI(values: ParsedCommand["values"]): Promise<Address> {
  const given = addressOption(values, "address");
  if (given) return given;
  const path = keystorePath(values);
  if (!existsSync(path))
    throw new UsageError(`no keystore at ${path}: give --address or create one (openlora wallet new)`);
  return keystoreAddress(path);
}

async function gatewayInfo(dir: string): Promise<(GatewayFile & { running: boolean }) | null> {
  let info: GatewayFile;
  try {
    info = JSON.parse(await readFile(join(dir, GATEWAY_FILE), "utf8")) as GatewayFile;
  } catch {
    return null;
  }
  let running = true;
  try {
    process.kill(info.pid, 0);
  } catch {
    running = false;
  }
  return { ...info, running };
}
