// Shared set-up for the contract suites: one Hardhat in-process chain per test file, the four contracts deployed
// with node/chain's deployAll, typed handles per account, snapshots, time travel, same-block transaction races
// (automine off, ordered by priority fee) and custom-error assertions.
import hre from "hardhat";
import {
  BaseError,
  ContractFunctionRevertedError,
  decodeErrorResult,
  getAddress,
  keccak256,
  parseEventLogs,
  parseEther,
  toHex,
  type Abi,
  type Address,
  type Hex,
  type TransactionReceipt,
} from "viem";
import { expect } from "vitest";
import {
  adapterRegistryAbi,
  inferenceEscrowAbi,
  nodeRegistryAbi,
  openTokenAbi,
} from "../../node/chain/generated/abi.ts";
import {
  deployAll,
  getContracts,
  type ChainClients,
  type DeployParams,
  type Deployment,
} from "../../node/chain/contracts.ts";
import { listingIdOf } from "../../node/chain/listing.ts";
import { signVoucher, skipReasonName, type EscrowDomain, type Voucher } from "../../node/chain/voucher.ts";

export interface SignedVoucher {
  voucher: Voucher;
  signature: Hex;
}

export const E = (n: number | string): bigint => parseEther(String(n));

/** Test parameters: small numbers that are easy to reason about. */
export const TEST_PARAMS: Partial<DeployParams> = {
  tokenSupply: E(1_000_000),
  minStake: E(100),
  unbondingPeriod: 7n * 86400n,
  protocolFeeBps: 500,
  contributorShareBps: 2000,
  withdrawDelay: 86400n,
  withdrawWindow: 86400n,
};

/** Fee fields of a transaction in a same-block race: an explicit gas limit (no estimate against a stale state). */
export interface RaceFees {
  gas: bigint;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
}

/** One transaction of a race: its priority fee in gwei (higher is mined first) and how to send it. */
export interface RaceEntry {
  tipGwei: number;
  send: (fees: RaceFees) => Promise<Hex>;
}

// Every error any of our contracts (or a token they call) may raise, for decoding reverts.
const ALL_ERRORS: Abi = [...openTokenAbi, ...nodeRegistryAbi, ...adapterRegistryAbi, ...inferenceEscrowAbi].filter(
  (x) => x.type === "error",
);

export async function createChain(overrides: Partial<DeployParams> = {}) {
  const conn = await hre.network.create();
  const viem = conn.viem;
  const publicClient = await viem.getPublicClient();
  // Hardhat hands out lower-case addresses; checksummed ones compare equal to what contracts return.
  const wallets = await Promise.all(
    (await viem.getWalletClients()).map((w) => viem.getWalletClient(getAddress(w.account.address))),
  );
  const testClient = await viem.getTestClient();
  const [
    deployer,
    nodeA,
    nodeB,
    payerA,
    payerB,
    payerC,
    c1,
    c2,
    c3,
    treasury,
    adapterOwner,
    stranger,
    attacker,
    author,
  ] = wallets;
  const clients = (i: number): ChainClients => ({ public: publicClient, wallet: wallets[i] });
  const deployment: Deployment = await deployAll(clients(0), {
    ...TEST_PARAMS,
    treasury: treasury.account.address,
    ...overrides,
  });
  const chainId = await publicClient.getChainId();
  const domain: EscrowDomain = { chainId, verifyingContract: deployment.contracts.InferenceEscrow };
  /** Typed contract handles writing as `wallet`. */
  const as = (wallet: (typeof wallets)[number]) => getContracts({ public: publicClient, wallet }, deployment.contracts);
  const read = getContracts({ public: publicClient }, deployment.contracts);

  async function wait(hash: Promise<Hex> | Hex): Promise<TransactionReceipt> {
    const receipt = await publicClient.waitForTransactionReceipt({ hash: await hash });
    expect(receipt.status).toBe("success");
    return receipt;
  }
  async function snapshot(): Promise<Hex> {
    return testClient.snapshot();
  }
  async function revertTo(id: Hex): Promise<void> {
    await testClient.revert({ id });
  }
  async function increaseTime(seconds: bigint | number): Promise<void> {
    await testClient.increaseTime({ seconds: Number(seconds) });
    await testClient.mine({ blocks: 1 });
  }
  /** Give `to` tokens from the deployer. */
  async function fund(to: Address, amount: bigint): Promise<void> {
    await wait(as(deployer).token.write.transfer([to, amount]));
  }
  async function approve(wallet: (typeof wallets)[number], spender: Address, amount: bigint): Promise<void> {
    await wait(as(wallet).token.write.approve([spender, amount]));
  }
  /** Fund, approve and stake `amount` for a node operator. */
  async function stakeNode(wallet: (typeof wallets)[number], amount: bigint = E(100)): Promise<void> {
    await fund(wallet.account.address, amount);
    await approve(wallet, deployment.contracts.NodeRegistry, amount);
    await wait(
      as(wallet).nodeRegistry.write.stake([amount, peerIdOf(wallet.account.address), "https://node.example/api"]),
    );
  }
  /** Fund, approve and deposit `amount` by a payer for `node`. */
  async function depositFor(
    wallet: (typeof wallets)[number],
    node: (typeof wallets)[number] | Address,
    amount: bigint,
  ): Promise<void> {
    await fund(wallet.account.address, amount);
    await approve(wallet, deployment.contracts.InferenceEscrow, amount);
    await wait(as(wallet).escrow.write.deposit([addressOf(node), amount]));
  }
  /** Register a listing of the content `name` stands for, by `registrant`, with the given attribution; its id. */
  async function registerListing(
    registrant: (typeof wallets)[number],
    name: string,
    contributors: Address[],
    weights: number[],
  ): Promise<Hex> {
    const hash = contentHashOf(name);
    await wait(
      as(registrant).adapterRegistry.write.register([
        hash,
        contentHashOf("base-model"),
        16,
        LISTING_SIZE,
        `ipfs://${name}`,
        contributors,
        weights,
      ]),
    );
    return listingIdOf(registrant.account.address, hash);
  }
  /**
   * Sends the entries with automine off, each with its priority fee, mines them in ONE block (Hardhat orders its
   * mempool by fee) and turns automine back on. Returns the receipts in entry order; reverted ones included.
   */
  async function race(...entries: RaceEntry[]): Promise<TransactionReceipt[]> {
    const base = (await publicClient.getBlock()).baseFeePerGas ?? 0n;
    await testClient.setAutomine(false);
    const hashes: Hex[] = [];
    try {
      for (const e of entries) {
        const tip = BigInt(e.tipGwei) * 10n ** 9n;
        hashes.push(await e.send({ gas: 3_000_000n, maxPriorityFeePerGas: tip, maxFeePerGas: base * 2n + tip }));
      }
      await testClient.mine({ blocks: 1 });
    } finally {
      await testClient.setAutomine(true);
    }
    const receipts = await Promise.all(hashes.map((hash) => publicClient.getTransactionReceipt({ hash })));
    const block = receipts[0].blockNumber;
    for (const r of receipts) expect(r.blockNumber).toBe(block); // one block: the ordering inside it is the attack
    return receipts;
  }
  async function sign(wallet: (typeof wallets)[number], v: Voucher, d: EscrowDomain = domain): Promise<Hex> {
    return signVoucher(wallet, v, d);
  }
  /** A voucher from `payer` to `node` signed by the payer (for `d`, this escrow by default). */
  async function signed(
    payer: (typeof wallets)[number],
    node: (typeof wallets)[number] | Address,
    listingId: Hex,
    cumulativeAmount: bigint,
    d: EscrowDomain = domain,
  ): Promise<SignedVoucher> {
    const voucher: Voucher = { payer: payer.account.address, node: addressOf(node), listingId, cumulativeAmount };
    return { voucher, signature: await signVoucher(payer, voucher, d) };
  }
  /** settle() as `node`: the return value (simulated first), the receipt, and the decoded per-voucher events. */
  async function settle(node: (typeof wallets)[number], items: SignedVoucher[]) {
    const args = [items.map((i) => i.voucher), items.map((i) => i.signature)] as const;
    const { result: paid } = await as(node).escrow.simulate.settle(args, { account: node.account.address });
    const receipt = await wait(as(node).escrow.write.settle(args));
    const settled = parseEventLogs({ abi: inferenceEscrowAbi, logs: receipt.logs, eventName: "VoucherSettled" }).map(
      (l) => l.args,
    );
    const skipped = parseEventLogs({ abi: inferenceEscrowAbi, logs: receipt.logs, eventName: "VoucherSkipped" }).map(
      (l) => ({ payer: l.args.payer, listingId: l.args.listingId, reason: skipReasonName(l.args.reason) }),
    );
    return { paid, receipt, settled, skipped };
  }
  async function tokenBalance(a: Address): Promise<bigint> {
    return read.token.read.balanceOf([a]);
  }
  /** The escrowed deposit of `payer` for `node`. */
  async function deposit(payer: (typeof wallets)[number], node: (typeof wallets)[number]): Promise<bigint> {
    return read.escrow.read.balanceOf([payer.account.address, node.account.address]);
  }

  return {
    conn,
    viem,
    publicClient,
    testClient,
    wallets,
    deployer,
    nodeA,
    nodeB,
    payerA,
    payerB,
    payerC,
    c1,
    c2,
    c3,
    treasury,
    adapterOwner,
    stranger,
    attacker,
    author,
    clients,
    deployment,
    chainId,
    domain,
    as,
    read,
    wait,
    snapshot,
    revertTo,
    increaseTime,
    fund,
    approve,
    stakeNode,
    depositFor,
    registerListing,
    race,
    sign,
    signed,
    settle,
    tokenBalance,
    deposit,
  };
}
export type Chain = Awaited<ReturnType<typeof createChain>>;

/** The canonical encoding's length every test listing declares. */
export const LISTING_SIZE = 4096n;

/** A content hash for `name` (stands in for the sha256 of an adapter's canonical encoding). */
export function contentHashOf(name: string): Hex {
  return keccak256(toHex(name));
}

function addressOf(who: { account: { address: Address } } | Address): Address {
  return typeof who === "string" ? who : who.account.address;
}
export function peerIdOf(addr: Address): Hex {
  return `0x0024080112${addr.slice(2).padEnd(64, "0")}` as Hex; // shaped like an Ed25519 libp2p peer id
}

/** The decoded custom error (name and args) of a reverted call, or throws when it did not revert. */
export async function revertOf(p: Promise<unknown>): Promise<{ errorName: string; args: readonly unknown[] }> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof BaseError)) throw e;
    const revert = e.walk((x) => x instanceof ContractFunctionRevertedError);
    if (revert instanceof ContractFunctionRevertedError) {
      if (revert.data?.errorName) return { errorName: revert.data.errorName, args: revert.data.args ?? [] };
      if (revert.raw) {
        const d = decodeErrorResult({ abi: ALL_ERRORS, data: revert.raw });
        return { errorName: d.errorName, args: d.args ?? [] };
      }
    }
    // A failed deployment carries no decoded data; the node's message names the error.
    const m = /reverted with custom error '(\w+)\(/.exec(e.message);
    if (m) return { errorName: m[1], args: [] };
    throw e;
  }
  throw new Error("expected a revert, the call succeeded");
}

/** Assert `p` reverts with custom error `name` (and `args` when given). */
export async function expectRevert(p: Promise<unknown>, name: string, args?: readonly unknown[]): Promise<void> {
  const r = await revertOf(p);
  expect(r.errorName).toBe(name);
  if (args) expect(r.args).toEqual(args);
}
