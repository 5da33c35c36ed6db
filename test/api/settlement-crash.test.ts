// A paid node killed (SIGKILL) after it sent a settlement and before it recorded the outcome, then restarted:
// the chain and the ledger agree and nothing is paid twice. The chain is `hardhat node` in a child process and the
// node is `openlora node start` in another (paid mode: keystore, deployment file, peer network, settlement), so the
// kill is real. Mining is switched off while the node settles, so the transaction waits in the mempool: it is
// mined either while the node is dead (the restart finds it mined) or after the restart (the node sends the same
// bytes again and then finds it mined).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { parseEther, type Address, type Hex } from "viem";
import { generatePrivateKey, mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeVoucherHeader } from "../../node/api/payment/voucher-header.ts";
import {
  getContracts,
  importKeystore,
  inferenceEscrowAbi,
  listingIdOf,
  signVoucher,
  writeKeystoreFile,
} from "../../node/chain/index.ts";
import { Ledger } from "../../node/ledger/index.ts";
import { loadOrCreatePeerKey, peerIdBytesHex } from "../../node/p2p/index.ts";
import {
  deployContracts,
  fund,
  readContracts,
  send,
  stake,
  walletOf,
  type DevnetChain,
} from "../../node/cli/devnet/chain-setup.ts";
import { startHardhatChain, type HardhatChain } from "../../node/cli/devnet/hardhat-chain.ts";
import { STORIES_DIR } from "../helpers/stories.ts";
import { ADAPTERS_DIR, postJson } from "./helpers.ts";
import { demoAdapterIds, fixedRequest, maxCost, PRICE } from "./paid-helpers.ts";

const CLI = join(import.meta.dirname, "../../node/cli/openlora.ts");
// Hardhat's default accounts: funded with ETH by `hardhat node`.
const MNEMONIC = "test test test test test test test test test test test junk";
const deployer = mnemonicToAccount(MNEMONIC, { addressIndex: 0 });
const registrant = mnemonicToAccount(MNEMONIC, { addressIndex: 1 });
const payer = mnemonicToAccount(MNEMONIC, { addressIndex: 2 });
const contributor = mnemonicToAccount(MNEMONIC, { addressIndex: 3 });

let hardhat: HardhatChain;
let c: DevnetChain;
let dir: string;
let dataDir: string;
let listingId: Hex;
let peerId: string;
const operatorKey = generatePrivateKey();
const operator = privateKeyToAccount(operatorKey);

beforeAll(async () => {
  hardhat = await startHardhatChain();
  dir = await mkdtemp(join(tmpdir(), "openlora-crash-"));
  dataDir = join(dir, "data");
  c = await deployContracts(hardhat.rpcUrl, deployer, join(dir, "deployments"));
  await writeKeystoreFile(join(dir, "keystore.json"), await importKeystore(operatorKey, "pw", { scryptN: 1024 }));
  await writeFile(join(dir, "password"), "pw\n");
  await walletOf(c, deployer).sendTransaction({ to: operator.address, value: parseEther("10") });
  await fund(c, deployer, [
    [operator.address, parseEther("1000")],
    [payer.address, parseEther("1000")],
  ]);
  peerId = peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDir)).toString();
  await stake(c, operator, parseEther("1000"), peerIdBytesHex(peerId), "http://127.0.0.1:0");
  const { dragon } = await demoAdapterIds();
  const registry = getContracts(
    { public: c.public, wallet: walletOf(c, registrant) },
    c.deployment.contracts,
  ).adapterRegistry;
  await send(c, "register", () =>
    registry.write.register([
      dragon.id,
      `0x${"11".repeat(32)}`,
      8,
      BigInt(dragon.bytes),
      "ipfs://dragon",
      [contributor.address],
      [10_000],
    ]),
  );
  listingId = listingIdOf(registrant.address, dragon.id);
  const k = getContracts({ public: c.public, wallet: walletOf(c, payer) }, c.deployment.contracts);
  const amount = parseEther("1");
  await send(c, "approve", () => k.token.write.approve([c.deployment.contracts.InferenceEscrow, amount]));
  await send(c, "deposit", () => k.escrow.write.deposit([operator.address, amount]));
});
afterAll(async () => {
  await hardhat?.stop();
});

interface RunningNode {
  child: ChildProcess;
  url: string;
  /** Every log line so far (parsed). */
  lines: Record<string, unknown>[];
  /** Resolves with the first log line of `event` from now on (its fields). */
  next(event: string): Promise<Record<string, unknown>>;
  exit: Promise<number | null>;
}

/** `openlora node start` in paid mode; resolves once it serves. Settles at once when anything is unsettled. */
function startNode(): Promise<RunningNode> {
  const args = [
    ...["node", "start", "--model", STORIES_DIR, "--backend", "cpu", "--adapters", ADAPTERS_DIR],
    ...["--api", "127.0.0.1:0", "--data-dir", dataDir, "--rpc", hardhat.rpcUrl],
    ...["--deployment", join(dir, "deployments"), "--keystore", join(dir, "keystore.json")],
    ...["--password-file", join(dir, "password"), "--price", PRICE.toString(), "--settle-threshold", "1"],
    ...["--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--drain", "1"],
  ];
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
  const waiters: { event: string; resolve: (fields: Record<string, unknown>) => void }[] = [];
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const fields = JSON.parse(line) as Record<string, unknown>;
    lines.push(fields);
    for (const w of waiters.filter((x) => x.event === fields.event)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(fields);
    }
  });
  const next = (event: string) => new Promise<Record<string, unknown>>((resolve) => waiters.push({ event, resolve }));
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    void next("node_started").then((f) => resolve({ child, url: f.url as string, lines, next, exit }));
    void exit.then((code) => reject(new Error(`node exited with ${code}:\n${stderr}`)));
  });
}

async function rpc(method: string, params: unknown[] = []): Promise<unknown> {
  return c.public.request({ method: method as never, params: params as never });
}

/** A paid request of `tokens` tokens on the channel; the voucher covers what was consumed so far and this one. */
async function paidRequest(node: RunningNode, cumulativeAmount: bigint, tokens: number): Promise<void> {
  const voucher = { payer: payer.address, node: operator.address, listingId, cumulativeAmount };
  const signature = await signVoucher(payer, voucher, {
    chainId: c.chain.id,
    verifyingContract: c.deployment.contracts.InferenceEscrow,
  });
  const res = await postJson(node.url, "/v1/completions", fixedRequest("dragon", tokens), {
    "x-openlora-voucher": encodeVoucherHeader({ voucher, signature }),
  });
  expect(res.status).toBe(200);
}

/** Waits until the chain's mempool holds `hash` (so the node did send it). */
async function inMempool(hash: Hex): Promise<void> {
  for (;;) {
    if ((await rpc("eth_getTransactionByHash", [hash])) !== null) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("a node killed between sending a settlement and recording it", () => {
  it("agrees with the chain after a restart, and nothing is paid twice", async () => {
    const escrow = readContracts(c).escrow;
    const token = readContracts(c).token;
    const operatorBefore = await token.read.balanceOf([operator.address]);
    const depositBefore = await escrow.read.balanceOf([payer.address, operator.address]);
    const batches = async () =>
      (
        await c.public.getContractEvents({
          address: c.deployment.contracts.InferenceEscrow,
          abi: inferenceEscrowAbi,
          eventName: "BatchSettled",
          args: { node: operator.address as Address },
          fromBlock: 0n,
        })
      ).length;

    // Round 1: mined while the node is dead.
    let node = await startNode();
    // It announces itself, with the URL it listens on: its own entry heads its routing table.
    await expect
      .poll(async () => ((await (await fetch(`${node.url}/v1/peers`)).json()) as { data: unknown[] }).data, {
        timeout: 20_000,
      })
      .toEqual([
        expect.objectContaining({
          peer_id: peerId,
          local: true,
          announcement: expect.objectContaining({ api: node.url }),
        }),
      ]);
    await rpc("evm_setAutomine", [false]);
    const sent1 = node.next("settlement_sent");
    await paidRequest(node, maxCost(8), 8);
    const tx1 = (await sent1).txHash as Hex;
    await inMempool(tx1);
    node.child.kill("SIGKILL");
    await node.exit;
    await rpc("evm_mine");
    node = await startNode();
    // The restart reconciles the pending batch with the mined transaction before it serves.
    expect(node.lines.find((l) => l.event === "settlement_confirmed")).toMatchObject({ txHash: tx1 });

    // Round 2: the node is killed again; the transaction is still waiting when it restarts, is sent again
    // (the same bytes) and mined after.
    const sent2 = node.next("settlement_sent");
    await paidRequest(node, 2n * maxCost(8), 8);
    const tx2 = (await sent2).txHash as Hex;
    await inMempool(tx2);
    node.child.kill("SIGKILL");
    await node.exit;
    node = await startNode();
    expect(node.lines.find((l) => l.event === "settlement_resent")).toMatchObject({ txHash: tx2 });
    const confirmed = node.next("settlement_confirmed");
    await rpc("evm_mine");
    await rpc("evm_setAutomine", [true]);
    expect((await confirmed).txHash).toBe(tx2);
    node.child.kill("SIGTERM");
    expect(await node.exit).toBe(0);

    // The chain paid each voucher's growth once: two batches, the channel settled at the last voucher.
    expect(await batches()).toBe(2);
    const total = 2n * maxCost(8);
    expect(await escrow.read.settled([payer.address, operator.address, listingId])).toBe(total);
    expect(await escrow.read.balanceOf([payer.address, operator.address])).toBe(depositBefore - total);
    const fee = (maxCost(8) * 500n) / 10_000n;
    const share = (maxCost(8) * 2000n) / 10_000n;
    expect(await token.read.balanceOf([operator.address])).toBe(operatorBefore + 2n * (maxCost(8) - fee - share));

    // The ledger says the same: both batches confirmed with what the chain paid, nothing unsettled or pending.
    const ledger = await Ledger.open(join(dataDir, "ledger"));
    try {
      const settlements = [];
      for await (const s of ledger.settlements()) settlements.push(s);
      expect(settlements.map((s) => [s.txHash, s.status]).sort()).toEqual(
        [
          [tx1, "confirmed"],
          [tx2, "confirmed"],
        ].sort(),
      );
      expect(settlements.flatMap((s) => s.outcomes)).toEqual([
        { status: "paid", amount: maxCost(8) },
        { status: "paid", amount: maxCost(8) },
      ]);
      expect(await ledger.pendingSettlements()).toEqual([]);
      expect(await ledger.unsettledChannels()).toEqual([]);
      const totals = await ledger.totals();
      expect(totals.settlement).toMatchObject({ batchesConfirmed: 2, vouchersPaid: 2, amountPaid: total });
      expect(totals.all).toMatchObject({ requests: 2, cost: total });
    } finally {
      await ledger.close();
    }
  });
});
