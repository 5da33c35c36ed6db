// `openlora stake | unstake | withdraw-stake`: the operator's stake in NodeRegistry, sent from the keystore's key.
// Each prints the transactions' receipts and the node's state afterwards. Amounts are OPEN tokens with 18
// decimals, parsed and printed exactly (viem parseUnits/formatUnits), never through floating point.
import { existsSync, statSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  defineChain,
  formatUnits,
  http,
  parseUnits,
  type Address,
  type Hex,
  type TransactionReceipt,
  type Transport,
} from "viem";
import { getContracts, loadDeployment, type Deployment } from "../../chain/index.ts";
import { peerIdBytesHex } from "../../p2p/stake-oracle.ts";
import { parseCommand, required, stringOption, UsageError, type CommandSpec, type ParsedCommand } from "../args.ts";
import { keystoreHelp, keystoreOptions, unlockKeystore } from "./wallet.ts";

const DECIMALS = 18;
const SYMBOL = "OPEN";
const DEFAULT_RPC = "http://127.0.0.1:8545";
const MAX_ENDPOINT_BYTES = 256; // NodeRegistry.MAX_ENDPOINT_LENGTH

/** What a test (or an embedding program) may supply instead of an HTTP connection to --rpc. */
export interface ChainAccess {
  transport?: Transport;
}

export const chainOptions = {
  rpc: { type: "string" },
  deployment: { type: "string" },
  ...keystoreOptions,
  json: { type: "boolean" },
} as const;

export const chainHelp: Record<string, string> = {
  rpc: `JSON-RPC URL of the chain (default ${DEFAULT_RPC})`,
  deployment: "deployments folder holding <chainId>.json, or that file (default ./deployments)",
  ...keystoreHelp,
  json: "print one JSON object: transactions and the node's state (amounts in OPEN, exact decimal strings)",
};

const stakeSpec: CommandSpec = {
  summary:
    "Stake OPEN in NodeRegistry and bind the node's libp2p peer id and API endpoint (approves the tokens first).",
  usage: "openlora stake --amount <OPEN> [--peer-id <id>] [--api <url>] [--rpc <url>] [--deployment <path>] [options]",
  options: { amount: { type: "string" }, "peer-id": { type: "string" }, api: { type: "string" }, ...chainOptions },
  help: {
    amount: "OPEN to add, up to 18 decimals (0 only rebinds the peer id and endpoint)",
    "peer-id": "the node's libp2p peer id (default: the one already bound; required for a first stake)",
    api: "the node's public API URL (default: the one already bound)",
    ...chainHelp,
  },
};

const unstakeSpec: CommandSpec = {
  summary: "Move bonded stake into unbonding; it can be withdrawn after the unbonding period.",
  usage: "openlora unstake [--amount <OPEN>] [--rpc <url>] [--deployment <path>] [options]",
  options: { amount: { type: "string" }, ...chainOptions },
  help: { amount: "OPEN to unbond (default: all bonded stake)", ...chainHelp },
};

const withdrawSpec: CommandSpec = {
  summary: "Withdraw the unbonded stake once its unbonding period has passed.",
  usage: "openlora withdraw-stake [--rpc <url>] [--deployment <path>] [options]",
  options: chainOptions,
  help: chainHelp,
};

/** The node's registry entry and wallet after a command, amounts in wei. */
interface NodeState {
  operator: Address;
  stake: bigint;
  unbonding: bigint;
  unbondingEnd: bigint;
  active: boolean;
  minStake: bigint;
  peerId: Hex;
  endpoint: string;
  balance: bigint;
}

interface TxSummary {
  step: string;
  hash: Hex;
  blockNumber: bigint;
  gasUsed: bigint;
  status: TransactionReceipt["status"];
}

export type Session = Awaited<ReturnType<typeof connect>>;

export async function stakeCommand(argv: string[], access: ChainAccess = {}): Promise<void> {
  const args = parseCommand(stakeSpec, argv);
  if (!args) return;
  const amount = parseAmount(required(args.values, "amount"), "amount", true);
  const peerIdText = stringOption(args.values, "peer-id");
  const peerId = peerIdText === undefined ? undefined : peerIdBytes(peerIdText);
  const api = stringOption(args.values, "api");
  if (api !== undefined) checkEndpoint(api);
  const s = await connect(args.values, access);
  const before = await readState(s);
  const bindPeerId = peerId ?? (before.peerId === "0x" ? undefined : before.peerId);
  if (bindPeerId === undefined) throw new UsageError("--peer-id is required for a first stake");
  const total = before.stake + amount;
  if (total < before.minStake) {
    throw new UsageError(`the stake would be ${tokens(total)}, below the minimum of ${tokens(before.minStake)}`);
  }
  if (before.balance < amount)
    throw new Error(`${s.operator} holds ${tokens(before.balance)}, less than ${tokens(amount)}`);
  const txs: TxSummary[] = [];
  const registry = s.deployment.contracts.NodeRegistry;
  if (amount > 0n && (await s.contracts.token.read.allowance([s.operator, registry])) < amount) {
    txs.push(await send(s, "approve", () => s.contracts.token.write.approve([registry, amount])));
  }
  const stakeArgs = [amount, bindPeerId, api ?? before.endpoint] as const;
  await simulate(() => s.contracts.nodeRegistry.simulate.stake(stakeArgs, { account: s.wallet.account }), "stake");
  txs.push(await send(s, "stake", () => s.contracts.nodeRegistry.write.stake(stakeArgs)));
  await report(s, txs, args.values);
}

export async function unstakeCommand(argv: string[], access: ChainAccess = {}): Promise<void> {
  const args = parseCommand(unstakeSpec, argv);
  if (!args) return;
  const amountText = stringOption(args.values, "amount");
  const requested = amountText === undefined ? undefined : parseAmount(amountText, "amount", false);
  const s = await connect(args.values, access);
  const before = await readState(s);
  const amount = requested ?? before.stake;
  if (amount === 0n) throw new Error(`${s.operator} has no bonded stake to unbond`);
  if (amount > before.stake)
    throw new Error(`cannot unbond ${tokens(amount)}: the bonded stake is ${tokens(before.stake)}`);
  await simulate(
    () => s.contracts.nodeRegistry.simulate.requestUnstake([amount], { account: s.wallet.account }),
    "unstake",
  );
  const tx = await send(s, "requestUnstake", () => s.contracts.nodeRegistry.write.requestUnstake([amount]));
  await report(s, [tx], args.values);
}

export async function withdrawStakeCommand(argv: string[], access: ChainAccess = {}): Promise<void> {
  const args = parseCommand(withdrawSpec, argv);
  if (!args) return;
  const s = await connect(args.values, access);
  const before = await readState(s);
  if (before.unbonding === 0n) throw new Error(`${s.operator} has no unbonding stake to withdraw`);
  const now = (await s.clients.public.getBlock()).timestamp;
  if (now < before.unbondingEnd) {
    throw new Error(`${tokens(before.unbonding)} is unbonding until ${isoTime(before.unbondingEnd)}`);
  }
  await simulate(() => s.contracts.nodeRegistry.simulate.withdrawStake({ account: s.wallet.account }), "withdraw");
  const tx = await send(s, "withdrawStake", () => s.contracts.nodeRegistry.write.withdrawStake());
  await report(s, [tx], args.values);
}

/** "12.5" -> 12.5e18 wei, refusing anything parseUnits would round or misread. */
export function parseAmount(text: string, option: string, zeroAllowed: boolean): bigint {
  if (!/^\d+(\.\d{1,18})?$/.test(text)) {
    throw new UsageError(`--${option} must be a number of ${SYMBOL} with at most ${DECIMALS} decimals, got "${text}"`);
  }
  const wei = parseUnits(text, DECIMALS);
  if (wei === 0n && !zeroAllowed) throw new UsageError(`--${option} must be above 0`);
  return wei;
}

function peerIdBytes(text: string): Hex {
  try {
    return peerIdBytesHex(text);
  } catch (error) {
    throw new UsageError(`--peer-id "${text}" is not a libp2p peer id: ${(error as Error).message}`);
  }
}

function checkEndpoint(api: string): void {
  let url: URL;
  try {
    url = new URL(api);
  } catch {
    throw new UsageError(`--api must be a URL such as https://node.example:8080, got "${api}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new UsageError(`--api must be http or https, got "${api}"`);
  if (Buffer.byteLength(api) > MAX_ENDPOINT_BYTES)
    throw new UsageError(`--api is longer than ${MAX_ENDPOINT_BYTES} bytes`);
}

/** The chain (checked reachable), its deployment, and clients writing as the unlocked keystore's account. */
export async function connect(values: ParsedCommand["values"], access: ChainAccess) {
  const { chain, transport, deployment } = await reach(values, access);
  const unlocked = await unlockKeystore(values);
  const clients = {
    public: createPublicClient({ chain, transport }),
    wallet: createWalletClient({ account: unlocked.account, chain, transport }),
  };
  return {
    clients,
    wallet: clients.wallet,
    operator: unlocked.address,
    deployment,
    contracts: getContracts(clients, deployment.contracts),
  };
}

/** The chain (checked reachable) and its deployment, to read only: no keystore password is asked. */
export async function connectRead(values: ParsedCommand["values"], access: ChainAccess) {
  const { chain, transport, deployment, rpc } = await reach(values, access);
  return { client: createPublicClient({ chain, transport }), deployment, rpc };
}

async function reach(values: ParsedCommand["values"], access: ChainAccess) {
  const rpc = stringOption(values, "rpc") ?? DEFAULT_RPC;
  const transport = access.transport ?? http(rpc);
  let chainId: number;
  try {
    chainId = await createPublicClient({ transport }).getChainId();
  } catch (error) {
    throw new Error(
      `cannot reach the chain at ${rpc}: ${(error as BaseError).shortMessage ?? (error as Error).message}`,
    );
  }
  const deployment = await readDeployment(stringOption(values, "deployment") ?? "deployments", chainId);
  const chain = defineChain({
    id: chainId,
    name: `chain-${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpc] } },
  });
  return { chain, transport, deployment, rpc };
}

/** --deployment names a folder of <chainId>.json files or one such file (loadDeployment checks the chain id). */
async function readDeployment(path: string, chainId: number): Promise<Deployment> {
  const full = resolve(path);
  if (!existsSync(full)) throw new UsageError(`--deployment ${full} does not exist (deploy with scripts/deploy.ts)`);
  const isFile = statSync(full).isFile();
  if (isFile && basename(full) !== `${chainId}.json`) {
    throw new UsageError(
      `--deployment ${full}: the chain's id is ${chainId}, so its deployment file is ${chainId}.json`,
    );
  }
  const dir = isFile ? dirname(full) : full;
  if (!existsSync(resolve(dir, `${chainId}.json`)))
    throw new UsageError(`no deployment for chain ${chainId} in ${dir}`);
  return loadDeployment(dir, chainId);
}

async function readState(s: Session): Promise<NodeState> {
  const [node, active, minStake, balance] = await Promise.all([
    s.contracts.nodeRegistry.read.nodeOf([s.operator]),
    s.contracts.nodeRegistry.read.isActive([s.operator]),
    s.contracts.nodeRegistry.read.minStake(),
    s.contracts.token.read.balanceOf([s.operator]),
  ]);
  return {
    operator: s.operator,
    stake: node.stake,
    unbonding: node.unbonding,
    unbondingEnd: BigInt(node.unbondingEnd),
    active,
    minStake,
    peerId: node.peerId,
    endpoint: node.endpoint,
    balance,
  };
}

/** Runs the call as a simulation first, so that a refusal is reported by its error name before anything is sent. */
async function simulate(call: () => Promise<unknown>, what: string): Promise<void> {
  try {
    await call();
  } catch (error) {
    throw new Error(`NodeRegistry refused to ${what}: ${revertReason(error)}`);
  }
}

async function send(s: Session, step: string, write: () => Promise<Hex>): Promise<TxSummary> {
  const hash = await write();
  const receipt = await s.clients.public.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`${step} transaction ${hash} reverted`);
  return { step, hash, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed, status: receipt.status };
}

function revertReason(error: unknown): string {
  if (error instanceof BaseError) {
    const revert = error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (revert instanceof ContractFunctionRevertedError && revert.data?.errorName) {
      const args = (revert.data.args ?? []).map((a) => (typeof a === "bigint" ? a.toString() : String(a)));
      return `${revert.data.errorName}(${args.join(", ")})`;
    }
    return error.shortMessage;
  }
  return (error as Error).message;
}

async function report(s: Session, txs: TxSummary[], values: ParsedCommand["values"]): Promise<void> {
  const state = await readState(s);
  if (values.json === true) {
    console.log(
      JSON.stringify({
        transactions: txs.map((t) => ({ ...t, blockNumber: Number(t.blockNumber), gasUsed: t.gasUsed.toString() })),
        node: {
          ...state,
          stake: formatUnits(state.stake, DECIMALS),
          unbonding: formatUnits(state.unbonding, DECIMALS),
          unbondingEnd: state.unbondingEnd === 0n ? null : isoTime(state.unbondingEnd),
          minStake: formatUnits(state.minStake, DECIMALS),
          balance: formatUnits(state.balance, DECIMALS),
        },
      }),
    );
    return;
  }
  const lines = txs.map((t) => `${t.step.padEnd(14)} ${t.hash} block ${t.blockNumber}, gas ${t.gasUsed}, ${t.status}`);
  const activity = state.active ? "active" : "inactive";
  lines.push(
    `operator       ${state.operator}`,
    `stake          ${tokens(state.stake)} (minimum ${tokens(state.minStake)}, ${activity})`,
    `unbonding      ${tokens(state.unbonding)}${state.unbonding > 0n ? ` until ${isoTime(state.unbondingEnd)}` : ""}`,
    `peer id bytes  ${state.peerId}`,
    `endpoint       ${state.endpoint || "(none)"}`,
    `balance        ${tokens(state.balance)}`,
  );
  console.log(lines.join("\n"));
}

export function tokens(wei: bigint): string {
  return `${formatUnits(wei, DECIMALS)} ${SYMBOL}`;
}

export function isoTime(seconds: bigint): string {
  return new Date(Number(seconds) * 1000).toISOString();
}
