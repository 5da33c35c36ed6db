// Deploys OpenToken, NodeRegistry, AdapterRegistry and InferenceEscrow and writes their addresses to
// <out>/<chainId>.json, which the node and the SDK read (node/chain loadDeployment).
//
//   bash scripts/run.sh node scripts/deploy.ts                      Hardhat's in-process network (a dry run:
//                                                                   written to deployments/inprocess/31337.json)
//   bash scripts/run.sh node scripts/deploy.ts --rpc http://127.0.0.1:8545
//                                                                   any JSON-RPC node; the deployer is --key,
//                                                                   --keystore, $OPENLORA_DEPLOYER_KEY, or else the
//                                                                   node's first unlocked account (hardhat node)
// Options: --out DIR (default deployments) --supply OPEN --min-stake OPEN --unbonding SECONDS
//          --withdraw-delay SECONDS (1 hour..30 days) --withdraw-window SECONDS (1 hour..30 days)
//          --fee-bps N (<= 1000) --share-bps N (<= 5000) --treasury ADDR --admin ADDR --token-holder ADDR
//          --keystore FILE (password from $OPENLORA_KEYSTORE_PASSWORD)
// Prints the deployment JSON on stdout.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  getAddress,
  http,
  parseEther,
  type Account,
  type Address,
  type Hex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import {
  deployAll,
  saveDeployment,
  type ChainClients,
  type DeployParams,
  type Deployment,
} from "../node/chain/contracts.ts";
import { readKeystoreFile } from "../node/chain/keystore.ts";

export interface DeployOptions {
  rpc?: string; // JSON-RPC URL; absent: Hardhat's in-process network
  privateKey?: Hex;
  keystore?: { path: string; password: string };
  out?: string; // folder of <chainId>.json files; default "deployments"
  params?: Partial<DeployParams>;
}

async function rpcClients(url: string, opts: DeployOptions): Promise<ChainClients> {
  const probe = createPublicClient({ transport: http(url) });
  const id = await probe.getChainId();
  const chain = defineChain({
    id,
    name: `chain-${id}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [url] } },
  });
  let account: Account | Address;
  if (opts.keystore) account = (await readKeystoreFile(opts.keystore.path, opts.keystore.password)).account;
  else if (opts.privateKey) account = privateKeyToAccount(opts.privateKey);
  else {
    const [first] = await createWalletClient({ transport: http(url) }).getAddresses();
    if (!first) throw new Error(`${url} has no unlocked account: pass --key or --keystore`);
    account = getAddress(first);
  }
  const wallet = createWalletClient({ account, chain, transport: http(url) });
  return { public: createPublicClient({ chain, transport: http(url) }), wallet };
}

/** Deploy the four contracts and save the deployment file; returns the deployment and the file's path. */
export async function deploy(opts: DeployOptions = {}): Promise<{ deployment: Deployment; path: string }> {
  const out = opts.out ?? "deployments";
  if (opts.rpc) {
    const deployment = await deployAll(await rpcClients(opts.rpc, opts), opts.params);
    return { deployment, path: await saveDeployment(out, deployment) };
  }
  if (opts.privateKey || opts.keystore)
    throw new Error("--key/--keystore need --rpc: the in-process network uses its own accounts");
  const { default: hre } = await import("hardhat");
  const conn = await hre.network.create();
  try {
    const publicClient = await conn.viem.getPublicClient();
    const [wallet] = await conn.viem.getWalletClients();
    const deployment = await deployAll({ public: publicClient, wallet }, opts.params);
    return { deployment, path: await saveDeployment(join(out, "inprocess"), deployment) };
  } finally {
    await conn.close();
  }
}

/** A whole number of seconds or basis points from flag `--name`; throws naming the flag when it is not one. */
function wholeFlag(name: string, value: string): bigint {
  if (!/^[0-9]+$/.test(value)) throw new Error(`--${name} must be a whole number, got ${JSON.stringify(value)}`);
  return BigInt(value);
}

function paramsFromFlags(v: Record<string, string | undefined>): Partial<DeployParams> {
  const p: Partial<DeployParams> = {};
  if (v.supply) p.tokenSupply = parseEther(v.supply);
  if (v["min-stake"]) p.minStake = parseEther(v["min-stake"]);
  if (v.unbonding) p.unbondingPeriod = wholeFlag("unbonding", v.unbonding);
  if (v["withdraw-delay"]) p.withdrawDelay = wholeFlag("withdraw-delay", v["withdraw-delay"]);
  if (v["withdraw-window"]) p.withdrawWindow = wholeFlag("withdraw-window", v["withdraw-window"]);
  if (v["fee-bps"]) p.protocolFeeBps = Number(wholeFlag("fee-bps", v["fee-bps"]));
  if (v["share-bps"]) p.contributorShareBps = Number(wholeFlag("share-bps", v["share-bps"]));
  if (v.treasury) p.treasury = getAddress(v.treasury);
  if (v.admin) p.admin = getAddress(v.admin);
  if (v["token-holder"]) p.tokenHolder = getAddress(v["token-holder"]);
  return p;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const names = [
    ...["rpc", "key", "keystore", "out", "supply", "min-stake", "unbonding", "withdraw-delay", "withdraw-window"],
    ...["fee-bps", "share-bps", "treasury", "admin", "token-holder"],
  ];
  const options = Object.fromEntries(names.map((n) => [n, { type: "string" as const }]));
  const { values } = parseArgs({ options, strict: true });
  const v = values as Record<string, string | undefined>;
  const key = (v.key ?? process.env.OPENLORA_DEPLOYER_KEY) as Hex | undefined;
  const keystore = v.keystore
    ? { path: v.keystore, password: process.env.OPENLORA_KEYSTORE_PASSWORD ?? "" }
    : undefined;
  const { deployment, path } = await deploy({
    rpc: v.rpc,
    privateKey: key,
    keystore,
    out: v.out,
    params: paramsFromFlags(v),
  });
  console.log(JSON.stringify(deployment, null, 2));
  console.error(`wrote ${path}`);
}
