// Shared set-up for the contract suites: one Hardhat in-process chain per test file, the four contracts deployed
// with node/chain's deployAll, typed handles per account, snapshots, time travel and custom-error assertions.
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
import { adapterRegistryAbi, inferenceEscrowAbi, nodeRegistryAbi, openTokenAbi } from "../../node/chain/abi.ts";
import {
  deployAll,
  getContracts,
  type ChainClients,
  type DeployParams,
  type Deployment,
} from "../../node/chain/contracts.ts";
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
};

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
  const [deployer, nodeA, nodeB, payerA, payerB, payerC, c1, c2, c3, treasury, adapterOwner, stranger] = wallets;
  const clients = (i: number): ChainClients => ({ public: publicClient, wallet: wallets[i] });
  const deployment: Deployment = await deployAll(clients(0), { ...TEST_PARAMS, treasury: treasury.account.address, ...overrides });
  const chainId = await publicClient.getChainId();
  const domain: EscrowDomain = { chainId, verifyingContract: deployment.contracts.InferenceEscrow };
  /** Typed contract handles writing as `wallet`. */
  const as = (wallet: (typeof wallets)[number]) =>
    getContracts({ public: publicClient, wallet }, deployment.contracts);
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
    await wait(as(wallet).nodeRegistry.write.stake([amount, peerIdOf(wallet.account.address), "https://node.example/api"]));
  }
  /** Fund, approve and deposit `amount` for a payer. */
  async function depositFor(wallet: (typeof wallets)[number], amount: bigint): Promise<void> {
    await fund(wallet.account.address, amount);
    await approve(wallet, deployment.contracts.InferenceEscrow, amount);
    await wait(as(wallet).escrow.write.deposit([amount]));
  }
  /** Register an adapter owned by `owner` with the given attribution; returns its id. */
  async function registerAdapter(
    owner: (typeof wallets)[number],
    name: string,
    contributors: Address[],
    weights: number[],
  ): Promise<Hex> {
    const id = adapterIdOf(name);
    await wait(
      as(owner).adapterRegistry.write.register([id, adapterIdOf("base-model"), 16, `ipfs://${name}`, contributors, weights]),
    );
    return id;
  }
  async function sign(wallet: (typeof wallets)[number], v: Voucher, d: EscrowDomain = domain): Promise<Hex> {
    return signVoucher(wallet, v, d);
  }
  /** A voucher from `payer` to `node` signed by the payer (for `d`, this escrow by default). */
  async function signed(
    payer: (typeof wallets)[number],
    node: (typeof wallets)[number] | Address,
    adapterId: Hex,
    cumulativeAmount: bigint,
    d: EscrowDomain = domain,
  ): Promise<SignedVoucher> {
    const voucher: Voucher = {
      payer: payer.account.address,
      node: typeof node === "string" ? node : node.account.address,
      adapterId,
      cumulativeAmount,
    };
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
      (l) => ({ payer: l.args.payer, adapterId: l.args.adapterId, reason: skipReasonName(l.args.reason) }),
    );
    return { paid, receipt, settled, skipped };
  }
  async function tokenBalance(a: Address): Promise<bigint> {
    return read.token.read.balanceOf([a]);
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
    registerAdapter,
    sign,
    signed,
    settle,
    tokenBalance,
  };
}
export type Chain = Awaited<ReturnType<typeof createChain>>;

export function adapterIdOf(name: string): Hex {
  return keccak256(toHex(name)); // stands in for sha256 of the weights
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
