// The devnet's own chain work: clients on the Hardhat node, the four contracts deployed, OPEN handed out, stakes.
// (Listings, deposits and claims go through the client SDK, as a user's commands do.) Every transaction is
// awaited to its receipt and must succeed.
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  type Address,
  type Chain,
  type Hex,
  type LocalAccount,
  type PublicClient,
  type Transport,
} from "viem";
import { deployAll, getContracts, saveDeployment, type ChainClients, type Deployment } from "../../chain/index.ts";
import { OpenLoraError } from "../../engine/index.ts";

/** A devnet transaction that reverted. */
export class DevnetTxError extends OpenLoraError {
  override name = "DevnetTxError";
}

/** Receipts are polled this often (viem's default of 4 s would dominate a devnet run on an automining chain). */
const POLL_MS = 50;

export interface DevnetChain {
  rpcUrl: string;
  chain: Chain;
  public: PublicClient<Transport, Chain>;
  deployment: Deployment;
}

export function chainClients(
  rpcUrl: string,
  chainId: number,
): { chain: Chain; public: PublicClient<Transport, Chain> } {
  const chain = defineChain({
    id: chainId,
    name: `devnet-${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  return { chain, public: createPublicClient({ chain, transport: http(rpcUrl), pollingInterval: POLL_MS }) };
}

export function walletOf(c: Pick<DevnetChain, "rpcUrl" | "chain">, account: LocalAccount) {
  return createWalletClient({ account, chain: c.chain, transport: http(c.rpcUrl), pollingInterval: POLL_MS });
}

/** Contract handles that only read. */
export function readContracts(c: DevnetChain) {
  return getContracts({ public: c.public }, c.deployment.contracts);
}

/** A public client and a wallet client writing as `account` (what the client SDK's chain calls take). */
export function clientsOf(c: DevnetChain, account: LocalAccount): ChainClients {
  return { public: c.public, wallet: walletOf(c, account) };
}

/** Contract handles writing as `account`. */
export function contractsOf(c: DevnetChain, account: LocalAccount) {
  return getContracts({ public: c.public, wallet: walletOf(c, account) }, c.deployment.contracts);
}

/** Sends a transaction and waits for its receipt; a revert is an error naming `what`. */
export async function send(c: Pick<DevnetChain, "public">, what: string, write: () => Promise<Hex>): Promise<void> {
  const hash = await write();
  const receipt = await c.public.waitForTransactionReceipt({ hash, pollingInterval: POLL_MS });
  if (receipt.status !== "success") throw new DevnetTxError("tx_reverted", `${what}: transaction ${hash} reverted`);
}

/** Deploys the contracts from `deployer` (also treasury and holder of the whole supply); saves the deployment. */
export async function deployContracts(
  rpcUrl: string,
  deployer: LocalAccount,
  deploymentsDir: string,
): Promise<DevnetChain> {
  const probe = createPublicClient({ transport: http(rpcUrl) });
  const { chain, public: publicClient } = chainClients(rpcUrl, await probe.getChainId());
  const wallet = walletOf({ rpcUrl, chain }, deployer);
  const deployment = await deployAll({ public: publicClient, wallet });
  await saveDeployment(deploymentsDir, deployment);
  return { rpcUrl, chain, public: publicClient, deployment };
}

/** OPEN from the deployer to each recipient. */
export async function fund(c: DevnetChain, deployer: LocalAccount, grants: [Address, bigint][]): Promise<void> {
  const token = contractsOf(c, deployer).token;
  for (const [to, amount] of grants) await send(c, `fund ${to}`, () => token.write.transfer([to, amount]));
}

/** Approves and stakes `amount` for `operator`, binding its node's peer id (bytes) and API URL. */
export async function stake(
  c: DevnetChain,
  operator: LocalAccount,
  amount: bigint,
  peerIdBytes: Hex,
  api: string,
): Promise<void> {
  const k = contractsOf(c, operator);
  await send(c, "approve stake", () => k.token.write.approve([c.deployment.contracts.NodeRegistry, amount]));
  await send(c, "stake", () => k.nodeRegistry.write.stake([amount, peerIdBytes, api]));
}
