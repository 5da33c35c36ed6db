// Gas figures of the money contracts on Hardhat's in-process network, written to bench/gas.json (flat object).
//   npm run gas      (= bash scripts/run.sh node scripts/gas.ts)
// settle is measured with distinct payers, each on a fresh channel (the costlier case: new storage slots), over
// 5 listings, vouchers grouped by listing as a node would batch them; *_repeat settles the same channels again.
import { mkdir, writeFile } from "node:fs/promises";
import hre from "hardhat";
import {
  createWalletClient,
  custom,
  keccak256,
  parseEther,
  parseSignature,
  toHex,
  type Account,
  type Chain,
  type Hex,
  type Transport,
  type WalletClient,
} from "viem";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { deployAll, getContracts, type ChainClients } from "../node/chain/contracts.ts";
import { listingIdOf } from "../node/chain/listing.ts";
import { signVoucher, type Voucher } from "../node/chain/voucher.ts";
import { bindingsUpToDate } from "./generate-abi.ts";

const E = (n: number): bigint => parseEther(String(n));

async function main(): Promise<void> {
  await hre.tasks.getTask("build").run({ quiet: true });
  if (!bindingsUpToDate()) {
    console.error("node/chain bindings are stale: run `bash scripts/run.sh node scripts/generate-abi.ts` first");
    process.exit(1);
  }
  const conn = await hre.network.create();
  const publicClient = await conn.viem.getPublicClient();
  const testClient = await conn.viem.getTestClient();
  const [deployer, node, owner, c1, c2, c3, treasury] = await conn.viem.getWalletClients();
  const chain = publicClient.chain;

  const gas: Record<string, number> = {};
  const clientsOf = (wallet: ChainClients["wallet"]): ChainClients => ({ public: publicClient, wallet });
  const deployment = await deployAll(clientsOf(deployer), {
    tokenSupply: E(1_000_000_000),
    minStake: E(1000),
    treasury: treasury.account.address,
  });
  for (let b = 1n; b <= BigInt(deployment.blockNumber); b++) {
    const block = await publicClient.getBlock({ blockNumber: b, includeTransactions: true });
    for (const tx of block.transactions) {
      const r = await publicClient.getTransactionReceipt({ hash: tx.hash });
      const name = Object.entries(deployment.contracts).find(
        ([, a]) => a.toLowerCase() === r.contractAddress?.toLowerCase(),
      );
      if (name) gas[`deploy_${name[0]}`] = Number(r.gasUsed);
    }
  }
  const as = <W extends ChainClients["wallet"]>(wallet: W) =>
    getContracts({ public: publicClient, wallet }, deployment.contracts);
  const { InferenceEscrow: escrow, NodeRegistry: registry } = deployment.contracts;
  const used = async (hash: Promise<Hex>): Promise<number> => {
    const r = await publicClient.waitForTransactionReceipt({ hash: await hash });
    if (r.status !== "success") throw new Error(`transaction failed: ${r.transactionHash}`);
    return Number(r.gasUsed);
  };

  // stake (first stake of an operator)
  await used(as(deployer).token.write.transfer([node.account.address, E(2000)]));
  await used(as(node).token.write.approve([registry, E(2000)]));
  gas.stake = await used(
    as(node).nodeRegistry.write.stake([E(1000), `0x0024080112${"ab".repeat(32)}`, "https://node.example/api"]),
  );

  // register: 5 listings with 3 contributors, one with 64
  const listings: Hex[] = [];
  for (let i = 0; i < 5; i++) {
    const contentHash = keccak256(toHex(`adapter-${i}`));
    listings.push(listingIdOf(owner.account.address, contentHash));
    const g = await used(
      as(owner).adapterRegistry.write.register([
        contentHash,
        keccak256(toHex("base")),
        16,
        4_718_592n,
        `ipfs://bafy-adapter-${i}`,
        [c1.account.address, c2.account.address, c3.account.address],
        [5000, 3000, 2000],
      ]),
    );
    if (i === 0) gas.register_3_contributors = g;
  }
  const many = Array.from({ length: 64 }, (_, i) => `0x${(i + 1).toString(16).padStart(40, "0")}` as Hex);
  gas.register_64_contributors = await used(
    as(owner).adapterRegistry.write.register([
      keccak256(toHex("adapter-64")),
      keccak256(toHex("base")),
      16,
      4_718_592n,
      "ipfs://bafy-adapter-64",
      many,
      many.map((_, i) => (i < 16 ? 157 : 156)),
    ]),
  );

  // 111 payers: local keys, funded with ETH and OPEN; deposits by permit (no approve transaction)
  const payers: WalletClient<Transport, Chain, Account>[] = [];
  const payerKeys: PrivateKeyAccount[] = [];
  for (let i = 0; i < 111; i++) {
    const account = privateKeyToAccount(keccak256(toHex(`openlora gas payer ${i}`)));
    payerKeys.push(account);
    await testClient.setBalance({ address: account.address, value: E(10) });
    payers.push(createWalletClient({ account, chain, transport: custom(conn.provider) }));
  }
  for (const p of payers) await used(as(deployer).token.write.transfer([p.account.address, E(100)]));
  const tokenDomain = {
    name: "OpenLoRA Token",
    version: "1",
    chainId: chain.id,
    verifyingContract: deployment.contracts.OpenToken,
  } as const;
  const permitTypes = {
    Permit: [
      { name: "owner", type: "address" },
      { name: "spender", type: "address" },
      { name: "value", type: "uint256" },
      { name: "nonce", type: "uint256" },
      { name: "deadline", type: "uint256" },
    ],
  } as const;
  for (const [i, p] of payers.entries()) {
    if (i === 0) {
      await used(as(p).token.write.approve([escrow, E(100)]));
      gas.deposit = await used(as(p).escrow.write.deposit([node.account.address, E(50)]));
      gas.deposit_again = await used(as(p).escrow.write.deposit([node.account.address, E(50)]));
      continue;
    }
    const deadline = 2n ** 40n;
    const sig = await p.signTypedData({
      domain: tokenDomain,
      types: permitTypes,
      primaryType: "Permit",
      message: { owner: p.account.address, spender: escrow, value: E(100), nonce: 0n, deadline },
    });
    const { r, s, v } = parseSignature(sig);
    const g = await used(
      as(p).escrow.write.depositWithPermit([node.account.address, E(100), deadline, Number(v), r, s]),
    );
    if (i === 1) gas.deposit_with_permit = g;
  }

  const domain = { chainId: chain.id, verifyingContract: escrow };
  async function settleBatch(from: number, count: number, amount: bigint): Promise<number> {
    const vouchers: Voucher[] = [];
    const sigs: Hex[] = [];
    for (let k = 0; k < count; k++) {
      const p = payers[from + k];
      // grouped by listing: the node sorts its batch so runs of one listing share a registry lookup
      const listingId = listings[Math.floor((k * listings.length) / count)];
      const v: Voucher = { payer: p.account.address, node: node.account.address, listingId, cumulativeAmount: amount };
      vouchers.push(v);
      sigs.push(await signVoucher(payerKeys[from + k], v, domain));
    }
    return used(as(node).escrow.write.settle([vouchers, sigs]));
  }
  gas.settle_1 = await settleBatch(0, 1, E(1));
  gas.settle_10 = await settleBatch(1, 10, E(1));
  gas.settle_per_voucher_10 = Math.round(gas.settle_10 / 10);
  gas.settle_100 = await settleBatch(11, 100, E(1));
  gas.settle_per_voucher_100 = Math.round(gas.settle_100 / 100);
  gas.settle_100_repeat = await settleBatch(11, 100, E(2));
  gas.settle_per_voucher_100_repeat = Math.round(gas.settle_100_repeat / 100);

  // claim: one listing (first claim), then five listings at once (another contributor)
  gas.claim_1_listing = await used(as(c1).escrow.write.claim([[listings[0]]]));
  gas.claim_5_listings = await used(as(c2).escrow.write.claim([listings]));

  // withdrawal
  const p0 = payers[20];
  gas.request_withdraw = await used(as(p0).escrow.write.requestWithdraw([node.account.address, E(10)]));
  await testClient.increaseTime({ seconds: 86400 });
  await testClient.mine({ blocks: 1 });
  gas.withdraw = await used(as(p0).escrow.write.withdraw([node.account.address]));
  gas.request_unstake = await used(as(node).nodeRegistry.write.requestUnstake([E(10)]));

  await mkdir("bench", { recursive: true });
  await writeFile("bench/gas.json", `${JSON.stringify(gas, null, 2)}\n`);
  const width = Math.max(...Object.keys(gas).map((k) => k.length));
  for (const [k, v] of Object.entries(gas))
    console.log(`${k.padEnd(width)}  ${v.toLocaleString("en-US").padStart(10)}`);
  const goal = gas.settle_per_voucher_100 < 60_000 ? "meets" : "MISSES";
  console.log(`settle per voucher (batch of 100): ${gas.settle_per_voucher_100} gas, ${goal} the 60k goal`);
  console.log("wrote bench/gas.json");
}

await main();
