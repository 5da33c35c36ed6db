// Deploying the four contracts and getting typed viem handles on them. Used by scripts/deploy.ts, the tests,
// the node and the SDK. Knows nothing of inference.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  getAddress,
  getContract,
  parseEther,
  type Abi,
  type Account,
  type Address,
  type Chain,
  type GetContractReturnType,
  type Hex,
  type PublicClient,
  type Transport,
  type WalletClient,
} from "viem";
import { adapterRegistryAbi, inferenceEscrowAbi, nodeRegistryAbi, openTokenAbi } from "./generated/abi.ts";
import {
  adapterRegistryBytecode,
  inferenceEscrowBytecode,
  nodeRegistryBytecode,
  openTokenBytecode,
} from "./generated/bytecode.ts";

/** A public client to read and a wallet client (with an account) to write. */
export interface ChainClients {
  public: PublicClient<Transport, Chain | undefined>;
  wallet: WalletClient<Transport, Chain | undefined, Account>;
}

/** Deployment parameters. Addresses default to the deployer. */
export interface DeployParams {
  tokenSupply: bigint; // OpenToken supply in wei, minted to tokenHolder
  tokenHolder?: Address;
  admin?: Address; // DEFAULT_ADMIN_ROLE on registry and escrow, SLASHER_ROLE on the registry
  treasury?: Address; // receives protocol fees and slashed stake
  minStake: bigint;
  unbondingPeriod: bigint; // seconds
  protocolFeeBps: number; // at most 1000 (10%)
  contributorShareBps: number; // at most 5000 (50%)
  withdrawDelay: bigint; // seconds, 1 hour to 30 days
  withdrawWindow: bigint; // seconds a matured withdrawal stays executable, 1 hour to 30 days
}

export const DEFAULT_DEPLOY_PARAMS: DeployParams = {
  tokenSupply: parseEther("1000000000"),
  minStake: parseEther("1000"),
  unbondingPeriod: 7n * 24n * 3600n,
  protocolFeeBps: 500,
  contributorShareBps: 2000,
  withdrawDelay: 24n * 3600n,
  withdrawWindow: 24n * 3600n,
};

export interface ContractAddresses {
  OpenToken: Address;
  NodeRegistry: Address;
  AdapterRegistry: Address;
  InferenceEscrow: Address;
}

/** What a deployments/<chainId>.json holds (JSON-plain: bigints as decimal strings). */
export interface Deployment {
  chainId: number;
  deployer: Address;
  blockNumber: number;
  contracts: ContractAddresses;
  params: {
    tokenSupply: string;
    tokenHolder: Address;
    admin: Address;
    treasury: Address;
    minStake: string;
    unbondingPeriod: string;
    protocolFeeBps: number;
    contributorShareBps: number;
    withdrawDelay: string;
    withdrawWindow: string;
  };
}

async function deployOne(
  clients: ChainClients,
  abi: Abi,
  bytecode: Hex,
  args: readonly unknown[],
): Promise<{ address: Address; blockNumber: bigint }> {
  const hash = await clients.wallet.deployContract({
    abi,
    bytecode,
    args,
    account: clients.wallet.account,
    chain: clients.wallet.chain,
  });
  const receipt = await clients.public.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success" || !receipt.contractAddress) throw new Error(`deployment failed: ${hash}`);
  return { address: getAddress(receipt.contractAddress), blockNumber: receipt.blockNumber };
}

/** Deploy OpenToken, NodeRegistry, AdapterRegistry and InferenceEscrow from the wallet client's account. */
export async function deployAll(clients: ChainClients, overrides: Partial<DeployParams> = {}): Promise<Deployment> {
  const p: DeployParams = { ...DEFAULT_DEPLOY_PARAMS, ...overrides };
  const deployer = getAddress(clients.wallet.account.address);
  const tokenHolder = p.tokenHolder ?? deployer;
  const admin = p.admin ?? deployer;
  const treasury = p.treasury ?? deployer;
  const chainId = await clients.public.getChainId();

  const token = await deployOne(clients, openTokenAbi, openTokenBytecode, [tokenHolder, p.tokenSupply]);
  const registry = await deployOne(clients, nodeRegistryAbi, nodeRegistryBytecode, [
    token.address,
    admin,
    treasury,
    p.minStake,
    p.unbondingPeriod,
  ]);
  const adapters = await deployOne(clients, adapterRegistryAbi, adapterRegistryBytecode, []);
  const escrow = await deployOne(clients, inferenceEscrowAbi, inferenceEscrowBytecode, [
    token.address,
    registry.address,
    adapters.address,
    admin,
    treasury,
    p.protocolFeeBps,
    p.contributorShareBps,
    p.withdrawDelay,
    p.withdrawWindow,
  ]);
  return {
    chainId,
    deployer,
    blockNumber: Number(escrow.blockNumber),
    contracts: {
      OpenToken: token.address,
      NodeRegistry: registry.address,
      AdapterRegistry: adapters.address,
      InferenceEscrow: escrow.address,
    },
    params: {
      tokenSupply: p.tokenSupply.toString(),
      tokenHolder,
      admin,
      treasury,
      minStake: p.minStake.toString(),
      unbondingPeriod: p.unbondingPeriod.toString(),
      protocolFeeBps: p.protocolFeeBps,
      contributorShareBps: p.contributorShareBps,
      withdrawDelay: p.withdrawDelay.toString(),
      withdrawWindow: p.withdrawWindow.toString(),
    },
  };
}

/** Clients for getContracts: a public client, and a wallet client when the handles should write. */
export type ContractClients =
  | { public: PublicClient<Transport, Chain | undefined>; wallet: ChainClients["wallet"] }
  | { public: PublicClient<Transport, Chain | undefined> };

/** Typed viem contract handles: `.read.*` always, `.write.*` and `.simulate.*` when a wallet client is given. */
export function getContracts<C extends ContractClients>(clients: C, addresses: ContractAddresses) {
  return {
    token: getContract({ address: addresses.OpenToken, abi: openTokenAbi, client: clients }),
    nodeRegistry: getContract({ address: addresses.NodeRegistry, abi: nodeRegistryAbi, client: clients }),
    adapterRegistry: getContract({ address: addresses.AdapterRegistry, abi: adapterRegistryAbi, client: clients }),
    escrow: getContract({ address: addresses.InferenceEscrow, abi: inferenceEscrowAbi, client: clients }),
  };
}

export type OpenTokenContract = GetContractReturnType<typeof openTokenAbi, ChainClients>;
export type NodeRegistryContract = GetContractReturnType<typeof nodeRegistryAbi, ChainClients>;
export type AdapterRegistryContract = GetContractReturnType<typeof adapterRegistryAbi, ChainClients>;
export type InferenceEscrowContract = GetContractReturnType<typeof inferenceEscrowAbi, ChainClients>;

/** deployments/<chainId>.json under `dir`. */
export function deploymentPath(dir: string, chainId: number): string {
  return join(dir, `${chainId}.json`);
}

/** Write `deployment` to `dir`/<chainId>.json; returns the path. */
export async function saveDeployment(dir: string, deployment: Deployment): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = deploymentPath(dir, deployment.chainId);
  await writeFile(path, `${JSON.stringify(deployment, null, 2)}\n`);
  return path;
}

/** Read `dir`/<chainId>.json; throws when missing or not a deployment of these four contracts. */
export async function loadDeployment(dir: string, chainId: number): Promise<Deployment> {
  const path = deploymentPath(dir, chainId);
  const d = JSON.parse(await readFile(path, "utf8")) as Deployment;
  if (d.chainId !== chainId) throw new Error(`${path}: chainId ${d.chainId}, expected ${chainId}`);
  for (const name of ["OpenToken", "NodeRegistry", "AdapterRegistry", "InferenceEscrow"] as const) {
    d.contracts[name] = getAddress(d.contracts[name]);
  }
  return d;
}
