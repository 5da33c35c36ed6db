// A paid node killed (SIGKILL) after it sent a settlement and before it recorded the outcome, then restarted:
// the chain and the ledger agree and nothing is paid twice. The chain is `hardhat node` in a child process and the
// node is `openlora node start` in another (paid mode: keystore, deployment file, peer network, settlement), so the
// kill is real. Mining is switched off while the node settles, so the transaction waits in the mempool: it is
// mined either while the node is dead (the restart finds it mined) or after the restart (the node sends the same
// bytes again and then finds it mined). Then the same node is stopped with SIGTERM while a stream runs and its chain
// has stopped answering: it still ends, every step bounded, with nothing unsettled lost.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { connect as tcpConnect, createServer, type Socket } from "node:net";
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

/**
 * `openlora node start` in paid mode; resolves once it serves. Settles at once when anything is unsettled, unless
 * given a settlement threshold.
 */
function startNode(options: { rpcUrl?: string; settleThreshold?: string } = {}): Promise<RunningNode> {
  const args = [
    ...["node", "start", "--model", STORIES_DIR, "--backend", "cpu", "--adapters", ADAPTERS_DIR],
    ...["--api", "127.0.0.1:0", "--data-dir", dataDir, "--rpc", options.rpcUrl ?? hardhat.rpcUrl],
    ...["--deployment", join(dir, "deployments"), "--keystore", join(dir, "keystore.json")],
    ...["--password-file", join(dir, "password"), "--price", PRICE.toString()],
    ...["--settle-threshold", options.settleThreshold ?? "1"],
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

/** The voucher header of payer's channel on dragon at `cumulativeAmount`. */
async function voucherHeader(cumulativeAmount: bigint): Promise<Record<string, string>> {
  const voucher = { payer: payer.address, node: operator.address, listingId, cumulativeAmount };
  const signature = await signVoucher(payer, voucher, {
    chainId: c.chain.id,
    verifyingContract: c.deployment.contracts.InferenceEscrow,
  });
  return { "x-openlora-voucher": encodeVoucherHeader({ voucher, signature }) };
}

/** A paid request of `tokens` tokens on the channel; the voucher covers what was consumed so far and this one. */
async function paidRequest(node: RunningNode, cumulativeAmount: bigint, tokens: number): Promise<void> {
  const res = await postJson(
    node.url,
    "/v1/completions",
    fixedRequest("dragon", tokens),
    await voucherHeader(cumulativeAmount),
  );
  expect(res.status).toBe(200);
}

/**
 * A TCP relay to the chain's RPC that can stop answering: after blackHole() it keeps every connection open and
 * swallows what arrives (an unresponsive chain, not a refused one: calls hang until their own timeouts).
 */
async function rpcRelay(target: string): Promise<{ url: string; blackHole(): void; close(): void }> {
  const { hostname, port } = new URL(target);
  const pairs = new Map<Socket, Socket | null>();
  let dead = false;
  const server = createServer((client) => {
    client.on("error", () => client.destroy());
    client.on("close", () => pairs.delete(client));
    if (dead) {
      pairs.set(client, null);
      client.resume();
      return;
    }
    const upstream = tcpConnect(Number(port), hostname);
    upstream.on("error", () => client.destroy());
    pairs.set(client, upstream);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    blackHole() {
      dead = true;
      for (const [client, upstream] of pairs) {
        if (upstream === null) continue;
        client.unpipe(upstream);
        upstream.unpipe(client);
        upstream.destroy();
        pairs.set(client, null);
        client.resume();
      }
    },
    close() {
      for (const client of pairs.keys()) client.destroy();
      server.close();
    },
  };
}

/** A streamed paid request; `firstChunk` resolves at its first bytes, `done` with the whole body once it ends. */
function streamRequest(url: string, body: unknown, headers: Record<string, string>) {
  let first: () => void = () => {};
  const firstChunk = new Promise<void>((resolve) => (first = resolve));
  const done = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest(
      `${url}/v1/completions`,
      { method: "POST", headers: { "content-type": "application/json", ...headers } },
      (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString("utf8");
          first();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
  return { firstChunk, done };
}

/** Waits until the chain's mempool holds `hash` (so the node did send it). */
async function inMempool(hash: Hex): Promise<void> {
  for (;;) {
    if ((await rpc("eth_getTransactionByHash", [hash])) !== null) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("a node killed between sending a settlement and recording it", () => {
  it("agrees with the chain after a restart, and nothing is paid twice", { timeout: 240_000 }, async () => {
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

describe("a paid node stopped while its chain does not answer", () => {
  it(
    "ends on SIGTERM, each step bounded, and keeps what is unsettled for the next start",
    { timeout: 180_000 },
    async () => {
      const escrow = readContracts(c).escrow;
      const settledBefore = await escrow.read.settled([payer.address, operator.address, listingId]);
      // The channel as the test above left it (its node is stopped): new vouchers go above its latest one.
      const previous = await withLedger(async (ledger) => {
        const channel = await ledger.channel({ payer: payer.address, node: operator.address, listingId });
        return channel?.latest.cumulativeAmount ?? 0n;
      });
      const latest = previous + maxCost(8) + maxCost(400);
      const relay = await rpcRelay(hardhat.rpcUrl);
      try {
        // Settlement only at shutdown: the vouchers below stay unsettled until then.
        const node = await startNode({ rpcUrl: relay.url, settleThreshold: (10n ** 30n).toString() });
        await paidRequest(node, previous + maxCost(8), 8);
        const stream = streamRequest(
          node.url,
          { ...fixedRequest("dragon", 400), stream: true },
          await voucherHeader(latest),
        );
        await stream.firstChunk;
        relay.blackHole();
        node.child.kill("SIGTERM");

        // The stream ends (whole, or cut with the shutting-down error once the drain second is over) and so does the
        // process: the settlement at shutdown waited on the chain for its bounded step only, then was given up.
        const answer = await stream.done;
        expect(answer.status).toBe(200);
        expect(answer.body).toMatch(/data: \[DONE\]\n\n$|"code":"shutting_down"/);
        expect(await node.exit).toBe(0);
        const events = node.lines.map((l) => l.event);
        expect(events).toContain("node_stopping");
        expect(events.at(-1)).toBe("node_stopped");
        expect(node.lines).toContainEqual(
          expect.objectContaining({ event: "shutdown_step_timeout", part: "settlement" }),
        );
      } finally {
        relay.close();
      }

      // Nothing was lost: the channel's latest voucher is in the ledger, unsettled, no batch half-sent, and nothing
      // more was paid on chain.
      await withLedger(async (ledger) => {
        const channels = await ledger.unsettledChannels();
        expect(channels.map((ch) => [ch.listingId, ch.latest.cumulativeAmount, ch.settled])).toEqual([
          [listingId.toLowerCase(), latest, settledBefore],
        ]);
        expect(await ledger.pendingSettlements()).toEqual([]);
      });
      expect(await escrow.read.settled([payer.address, operator.address, listingId])).toBe(settledBefore);
    },
  );
});

/** The node's ledger, opened while no node runs on the data folder. */
async function withLedger<T>(read: (ledger: Ledger) => Promise<T>): Promise<T> {
  const ledger = await Ledger.open(join(dataDir, "ledger"));
  try {
    return await read(ledger);
  } finally {
    await ledger.close();
  }
}
