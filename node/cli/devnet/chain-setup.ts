// The devnet's chain work before any request: clients on the Hardhat node, the four contracts deployed, OPEN
// handed out, the demo adapters listed with their contributor splits, stakes and deposits. Every transaction is
// awaited to its receipt and must succeed.
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  keccak256,
  stringToHex,
  type Address,
  type Chain,
  type Hex,
  type LocalAccount,
  type PublicClient,
  type Transport,
} from "viem";
import { deployAll, getContracts, listingIdOf, saveDeployment, type Deployment } from "../../chain/index.ts";
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

/** The base model's id on chain: keccak256 of its name (the devnet's convention; nothing checks it yet). */
export function baseModelId(modelName: string): Hex {
  return keccak256(stringToHex(modelName));
}

export interface ListingSpec {
  contentHash: Hex;
  rank: number;
  bytes: number;
  uri: string;
  contributors: Address[];
  weightsBps: number[];
}

/** Lists an adapter as `registrant`; returns the listing id. */
export async function register(c: DevnetChain, registrant: LocalAccount, model: Hex, spec: ListingSpec): Promise<Hex> {
  const registry = contractsOf(c, registrant).adapterRegistry;
  await send(c, `register ${spec.uri}`, () =>
    registry.write.register([
      spec.contentHash,
      model,
      spec.rank,
      BigInt(spec.bytes),
      spec.uri,
      spec.contributors,
      spec.weightsBps,
    ]),
  );
  return listingIdOf(registrant.address, spec.contentHash);
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

/** `payer` deposits `amount` for each node (one approval for all). */
export async function deposit(c: DevnetChain, payer: LocalAccount, nodes: Address[], amount: bigint): Promise<void> {
  const k = contractsOf(c, payer);
  const total = amount * BigInt(nodes.length);
  await send(c, "approve deposits", () => k.token.write.approve([c.deployment.contracts.InferenceEscrow, total]));
  for (const node of nodes) await send(c, `deposit for ${node}`, () => k.escrow.write.deposit([node, amount]));
}

/** `contributor` claims its share of every listing given. */
export async function claim(c: DevnetChain, contributor: LocalAccount, listingIds: Hex[]): Promise<void> {
  const escrow = contractsOf(c, contributor).escrow;
  await send(c, `claim by ${contributor.address}`, () => escrow.write.claim([listingIds]));
}
