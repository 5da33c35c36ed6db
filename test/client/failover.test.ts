// Failover before the first token, paid once. Node A is a real `openlora node start` process (paid mode, on the
// in-process chain through its JSON-RPC over HTTP), cheaper than node B (in this process), so the client tries A
// first. A proxy in front of A lets A's answer head through and holds its body back; when A has accepted the
// voucher the test kills A (SIGKILL), so no token of A's ever reaches the client. The request completes on B; A
// recorded nothing (its ledger, read after its death, is empty) and B's settlement takes exactly B's voucher.
import { once } from "node:events";
import { join } from "node:path";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getContracts } from "../../node/chain/index.ts";
import type { PayingClient } from "../../node/client/index.ts";
import { Ledger } from "../../node/ledger/index.ts";
import { loadOrCreatePeerKey } from "../../node/p2p/peer-key.ts";
import { STORIES_DIR } from "../helpers/stories.ts";
import { stake } from "../p2p/helpers.ts";
import {
  adapterFolder,
  Cleanup,
  cliFiles,
  E,
  freePort,
  holdingProxy,
  newClient,
  newKey,
  newPayer,
  paidNetwork,
  PRICE,
  PROMPT,
  routedTo,
  rpcBridge,
  spawnCli,
  startPaidNode,
  until,
  type PaidNetwork,
  type PaidNode,
} from "./helpers.ts";

const cleanup = new Cleanup();
let net: PaidNetwork;
let nodeB: PaidNode;
let nodeA: ReturnType<typeof spawnCli>;
let operatorA: Awaited<ReturnType<typeof newKey>>;
let dataDirA: string;
let client: PayingClient;
let payer: Awaited<ReturnType<typeof newPayer>>;

beforeAll(async () => {
  net = await paidNetwork();
  nodeB = await startPaidNode(net, cleanup, { adapters: ["dragon"] });
  operatorA = await newKey(net.chain);
  const files = await cliFiles(net, cleanup, operatorA.privateKey);
  dataDirA = files.dataDir;
  const peerId = peerIdFromPrivateKey(await loadOrCreatePeerKey(dataDirA)).toString();
  await stake(net.chain, operatorA.account, peerId);
  const port = await freePort();
  const proxy = await holdingProxy(cleanup, port);
  nodeA = spawnCli(cleanup, [
    "node",
    "start",
    "--model",
    STORIES_DIR,
    "--backend",
    "cpu",
    "--adapters",
    await adapterFolder(cleanup, ["dragon"]),
    "--api",
    `127.0.0.1:${port}`,
    "--public-api",
    proxy,
    "--price",
    String(PRICE / 2n),
    "--rpc",
    await rpcBridge(net.chain, cleanup),
    "--p2p-listen",
    "/ip4/127.0.0.1/tcp/0",
    "--bootstrap",
    nodeB.bootstrap,
    ...files.args,
  ]);
  await until("node A serves", () => nodeA.err().includes("[openlora] serving") || nodeA.exitCode !== null, 240_000);
  expect(nodeA.exitCode, nodeA.err()).toBeNull();
  payer = await newPayer(net, [operatorA.account.address, nodeB.operator.address]);
  client = await newClient(net, cleanup, payer.account, { bootstrap: [nodeB.bootstrap] });
  // A is cheaper: tried first. Its announcements come every 5 s (the CLI's default timings).
  await routedTo(client, net.adapters.dragon.id, [operatorA.account.address, nodeB.operator.address], 60_000);
}, 360_000);
afterAll(async () => {
  await cleanup.run();
  await net.chain.conn.close();
});

describe("a node that dies before the first token", () => {
  it("is failed over: the request completes on the next node and is paid once", async () => {
    const escrow = getContracts({ public: net.chain.publicClient }, net.chain.deployment.contracts).escrow;
    const A = operatorA.account.address;
    const B = nodeB.operator.address;
    const depositA = await escrow.read.balanceOf([payer.account.address, A]);
    const depositB = await escrow.read.balanceOf([payer.account.address, B]);
    const killed = client
      .once("accepted", ({ node }) => node.operator === A)
      .then(async () => {
        nodeA.kill("SIGKILL");
        await once(nodeA, "exit");
      });
    const failovers: string[] = [];
    client.on("failover", ({ node, error }) => failovers.push(`${node.operator}: ${error.code}`));

    const stream = await client.createCompletion({
      model: net.adapters.dragon.id,
      prompt: PROMPT,
      max_tokens: 8,
      stream: true,
    });
    let text = "";
    for await (const chunk of stream) text += (chunk.choices as { text: string }[])[0]?.text ?? "";
    const payment = await stream.payment;
    await killed;

    expect(text.length).toBeGreaterThan(0);
    expect(payment.node.operator).toBe(B);
    expect(failovers).toEqual([`${A}: node_stream_cut`]);
    expect(payment.failovers.map((f) => f.node)).toEqual([A]);
    const receipt = payment.receipt!;
    expect(receipt.node).toBe(B);

    // A accepted a voucher and died before it ran the request to its end: it recorded nothing to settle.
    const ledgerA = await Ledger.open(join(dataDirA, "ledger"));
    try {
      expect((await ledgerA.totals()).all.requests).toBe(0);
      expect(await ledgerA.channels()).toEqual([]);
    } finally {
      await ledgerA.close();
    }
    // The client counts what it signed to A as exposure, not as a payment: no receipt, nothing consumed.
    const channelA = await client.state.channel(A, net.listings.dragon);
    expect(channelA).toMatchObject({ consumed: 0n, requests: 0 });
    expect(channelA.signed).toBeGreaterThan(0n);

    // B charged once; its settlement takes B's voucher, and A's deposit is untouched.
    const totalsB = await nodeB.service.ledger.totals();
    expect(totalsB.payers[payer.account.address.toLowerCase()]).toMatchObject({ requests: 1, cost: receipt.cost });
    await nodeB.service.paid!.settlement.settleNow();
    expect(await escrow.read.settled([payer.account.address, B, net.listings.dragon])).toBe(payment.voucherAmount);
    expect(await escrow.read.balanceOf([payer.account.address, B])).toBe(depositB - payment.voucherAmount!);
    expect(await escrow.read.balanceOf([payer.account.address, A])).toBe(depositA);
    expect(depositA).toBe(E(10));
  }, 120_000);
});
