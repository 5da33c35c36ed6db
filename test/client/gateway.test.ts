// `openlora gateway` as a user runs it (a child process paying from a keystore, on the in-process chain through
// its JSON-RPC over HTTP), in front of two paid nodes: node 1 holds dragon and ocean, node 2 robot. The official
// openai client, pointed at the gateway, streams and pays; the settlements take exactly the vouchers the receipts
// name; `openlora status` shows the limits, channels and unsettled amounts; `openlora infer` and `openlora usage`
// work and refuse bad input by name.
import OpenAI, { APIError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getContracts } from "../../node/chain/index.ts";
import { openlora } from "../cli/run-cli.ts";
import {
  Cleanup,
  cliFiles,
  newKey,
  newPayer,
  paidNetwork,
  PROMPT,
  rpcBridge,
  spawnCli,
  startPaidNode,
  until,
  type PaidNetwork,
  type PaidNode,
} from "./helpers.ts";

const cleanup = new Cleanup();
let net: PaidNetwork;
let node1: PaidNode;
let node2: PaidNode;
let payer: Awaited<ReturnType<typeof newPayer>>;
let files: Awaited<ReturnType<typeof cliFiles>>;
let rpc: string;
let gateway: string;

interface ReceiptJson {
  node: string;
  payer: string;
  listing_id: string;
  cost: string;
  cumulative_consumed: string;
  voucher_amount: string;
}

beforeAll(async () => {
  net = await paidNetwork();
  node1 = await startPaidNode(net, cleanup, { adapters: ["dragon", "ocean"] });
  node2 = await startPaidNode(net, cleanup, { adapters: ["robot"], bootstrap: [node1.bootstrap] });
  payer = await newPayer(net, [node1.operator.address, node2.operator.address]);
  files = await cliFiles(net, cleanup, payer.privateKey);
  rpc = await rpcBridge(net.chain, cleanup);
  const child = spawnCli(cleanup, [
    "gateway",
    "--listen",
    "127.0.0.1:0",
    "--bootstrap",
    node1.bootstrap,
    "--max-per-request",
    "0.0001",
    "--max-per-hour",
    "1",
    "--rpc",
    rpc,
    ...files.args,
  ]);
  await until(
    "the gateway listens",
    () => /^http:\/\/127\.0\.0\.1:\d+$/m.test(child.out()) || child.exitCode !== null,
    240_000,
  );
  expect(child.exitCode, child.err()).toBeNull();
  gateway = /^(http:\/\/127\.0\.0\.1:\d+)$/m.exec(child.out())![1];
  await until(
    "the gateway hears of both nodes",
    async () => {
      const models = (await (await fetch(`${gateway}/v1/models`)).json()) as { data: { id: string }[] };
      const ids = models.data.map((m) => m.id);
      return ids.includes(net.adapters.dragon.id) && ids.includes(net.adapters.robot.id);
    },
    60_000,
  );
}, 420_000);
afterAll(async () => {
  await cleanup.run();
  await net.chain.conn.close();
});

describe("openlora gateway", () => {
  const receipts: ReceiptJson[] = [];

  it("lets the official openai client stream and pay against two paid nodes", async () => {
    const openai = new OpenAI({ baseURL: `${gateway}/v1`, apiKey: "unused", maxRetries: 0 });
    const escrow = getContracts({ public: net.chain.publicClient }, net.chain.deployment.contracts).escrow;
    const me = payer.account.address;
    const before1 = await escrow.read.balanceOf([me, node1.operator.address]);
    const before2 = await escrow.read.balanceOf([me, node2.operator.address]);

    const chat = await openai.chat.completions.create({
      model: net.adapters.dragon.id,
      messages: [{ role: "user", content: "Tell me about a dragon" }],
      max_tokens: 10,
      stream: true,
    });
    const pieces: string[] = [];
    for await (const chunk of chat) {
      const piece = chunk.choices[0]?.delta?.content;
      if (piece) pieces.push(piece);
      const receipt = (chunk as unknown as { receipt?: ReceiptJson }).receipt;
      if (receipt) receipts.push(receipt);
    }
    expect(pieces.length).toBeGreaterThan(1);
    expect(receipts[0]).toMatchObject({ node: node1.operator.address, payer: me, listing_id: net.listings.dragon });

    // The robot adapter named by its listing id: only node 2 holds it.
    const completion = await openai.completions.create({
      model: net.listings.robot,
      prompt: PROMPT,
      max_tokens: 8,
      stream: true,
    });
    let text = "";
    for await (const chunk of completion) {
      text += chunk.choices[0]?.text ?? "";
      const receipt = (chunk as unknown as { receipt?: ReceiptJson }).receipt;
      if (receipt) receipts.push(receipt);
    }
    expect(text.length).toBeGreaterThan(0);
    expect(receipts[1]).toMatchObject({ node: node2.operator.address, listing_id: net.listings.robot });

    const whole = await openai.completions.create({ model: net.adapters.ocean.id, prompt: PROMPT, max_tokens: 6 });
    expect(whole.choices[0].text.length).toBeGreaterThan(0);
    expect(whole.usage?.total_tokens).toBeGreaterThan(0);
    receipts.push((whole as unknown as { receipt: ReceiptJson }).receipt);
    expect(receipts[2]).toMatchObject({ node: node1.operator.address, listing_id: net.listings.ocean });

    // Each node charged what its receipts say; settlement takes exactly the vouchers they name.
    const costOf = (node: PaidNode) =>
      receipts.filter((r) => r.node === node.operator.address).reduce((sum, r) => sum + BigInt(r.cost), 0n);
    for (const node of [node1, node2]) {
      const totals = await node.service.ledger.totals();
      expect(totals.payers[me.toLowerCase()].cost).toBe(costOf(node));
      await node.service.paid!.settlement.settleNow();
    }
    const vouchers = receipts.map((r) => BigInt(r.voucher_amount));
    expect(await escrow.read.settled([me, node1.operator.address, net.listings.dragon])).toBe(vouchers[0]);
    expect(await escrow.read.settled([me, node2.operator.address, net.listings.robot])).toBe(vouchers[1]);
    expect(await escrow.read.balanceOf([me, node1.operator.address])).toBe(before1 - vouchers[0] - vouchers[2]);
    expect(await escrow.read.balanceOf([me, node2.operator.address])).toBe(before2 - vouchers[1]);
  });

  it("refuses a request over the per-request limit before paying anything", async () => {
    const openai = new OpenAI({ baseURL: `${gateway}/v1`, apiKey: "unused", maxRetries: 0 });
    const error = await openai.completions
      .create({ model: net.adapters.dragon.id, prompt: PROMPT, max_tokens: 200 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).status).toBe(402);
    expect((error as APIError).code).toBe("spending_limit");
    expect((error as APIError).message).toMatch(/over the per-request limit of 0\.0001 OPEN/);
  });

  it("is shown by openlora status with its limits, the channels and what is left unsettled", async () => {
    // Status reads no secret: the keystore's address is enough (no --password-file).
    const readOnly = [
      "--rpc",
      rpc,
      "--data-dir",
      files.dataDir,
      "--deployment",
      files.args[files.args.indexOf("--deployment") + 1],
    ];
    const run = await openlora("status", "--json", ...readOnly);
    expect(run.code, run.stderr).toBe(0);
    const status = JSON.parse(run.stdout);
    expect(status.account.address).toBe(payer.account.address);
    expect(status.spending).toMatchObject({
      perRequest: "0.0001",
      perHour: "1",
      gateway: { url: gateway, running: true },
    });
    expect(Number(status.spending.lastHour)).toBeGreaterThan(0);
    expect(status.deposits.map((d: { node: string }) => d.node).sort()).toEqual(
      [node1.operator.address, node2.operator.address].sort(),
    );
    const dragon = status.channels.find((c: { listingId: string }) => c.listingId === net.listings.dragon);
    // Settled up to the last voucher: nothing left for the node to claim.
    expect(dragon).toMatchObject({ node: node1.operator.address, unsettled: "0", requests: 1 });
    expect(dragon.settled).toBe(dragon.signed);
    const text = await openlora("status", ...readOnly);
    expect(text.stdout).toMatch(
      /^spending\s+[\d.]+ OPEN in the last hour; limits 0\.0001 OPEN per request, 1 OPEN per hour$/m,
    );
  }, 360_000);
});

describe("openlora infer and usage", () => {
  const chain = (): string[] => ["--rpc", rpc, "--bootstrap", node1.bootstrap, ...files.args];

  it("pays a request by alias and prints the verified receipt", async () => {
    const run = await openlora(
      "infer",
      "--model",
      "dragon",
      "--prompt",
      PROMPT,
      "--max-tokens",
      "5",
      "--json",
      ...chain(),
    );
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.text.length).toBeGreaterThan(0);
    expect(out).toMatchObject({ contentHash: net.adapters.dragon.id, listingId: net.listings.dragon });
    expect(out.node.operator).toBe(node1.operator.address);
    expect(out.receipt).toMatchObject({ payer: payer.account.address, verified: true, cost: out.costWei });
    const streamed = await openlora(
      "infer",
      "--model",
      net.adapters.robot.id,
      "--prompt",
      PROMPT,
      "--stream",
      ...chain(),
    );
    expect(streamed.code, streamed.stderr).toBe(0);
    expect(streamed.stdout.trim().length).toBeGreaterThan(0);
    expect(streamed.stderr).toMatch(/charged [\d.]+ OPEN for \d+ tokens; receipt verified/);
  }, 360_000);

  it("refuses an unknown adapter, a payer without deposit and a missing way to find nodes", async () => {
    const unknown = await openlora("infer", "--model", `0x${"ab".repeat(32)}`, "--prompt", PROMPT, ...chain());
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/has no listing in AdapterRegistry/);
    const alias = await openlora("infer", "--model", "no-such-adapter", "--prompt", PROMPT, ...chain());
    expect(alias.code).toBe(1);
    expect(alias.stderr).toMatch(/unknown model "no-such-adapter"/);

    const poor = await newKey(net.chain);
    const poorFiles = await cliFiles(net, cleanup, poor.privateKey);
    const broke = await openlora(
      "infer",
      ...["--model", "dragon", "--prompt", PROMPT, "--rpc", rpc, "--bootstrap", node1.bootstrap, ...poorFiles.args],
    );
    expect(broke.code).toBe(1);
    expect(broke.stderr).toMatch(/you hold no deposit for any of them.*openlora deposit --node 0x/s);

    const lost = await openlora("infer", "--model", "dragon", "--prompt", PROMPT, "--rpc", rpc, ...files.args);
    expect(lost.code).toBe(2);
    expect(lost.stderr).toMatch(/--bootstrap <multiaddr> or --peers-from/);
  }, 600_000);

  it("reports an adapter's usage from a node's ledger, and refuses an unknown one", async () => {
    const run = await openlora("usage", "--adapter", "dragon", "--node", node1.url, "--json");
    expect(run.code, run.stderr).toBe(0);
    const usage = JSON.parse(run.stdout);
    const ledger = await node1.service.ledger.usage({ adapter: net.adapters.dragon.id });
    expect(usage.adapter).toBe(net.adapters.dragon.id);
    expect(usage.total.requests).toBe(ledger.reduce((n, b) => n + b.requests, 0));
    expect(usage.total.requests).toBeGreaterThanOrEqual(2);
    const unknown = await openlora("usage", "--adapter", "no-such-adapter", "--node", node1.url);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown adapter "no-such-adapter"/);
    const nowhere = await openlora("usage", "--adapter", "dragon");
    expect(nowhere.code).toBe(2);
  }, 360_000);
});
