// The client SDK against real paid nodes: an honest node H (dragon, ocean, robot) and a node L (robot only,
// cheaper, so routed first for robot) whose receipts a proxy forges to claim more than the payer signed. Requests
// whole and streamed, the channel's state on disk across a restart, concurrent requests on one channel, discovery
// over HTTP, the official openai client through client.fetch, spending limits, and the forged receipt detected.
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  NoDepositError,
  ReceiptError,
  SpendingLimitError,
  UnknownModelError,
  type PayingClient,
} from "../../node/client/index.ts";
import {
  Cleanup,
  forgingProxy,
  newClient,
  newKey,
  newPayer,
  paidNetwork,
  PRICE,
  PROMPT,
  routedTo,
  startPaidNode,
  tempDir,
  type PaidNetwork,
  type PaidNode,
} from "./helpers.ts";

const cleanup = new Cleanup();
let net: PaidNetwork;
let honest: PaidNode;
let liar: PaidNode;
let payer: Awaited<ReturnType<typeof newPayer>>;
let client: PayingClient;
let dataDir: string;

beforeAll(async () => {
  net = await paidNetwork();
  honest = await startPaidNode(net, cleanup, { adapters: ["dragon", "ocean", "robot"] });
  liar = await startPaidNode(net, cleanup, {
    adapters: ["robot"],
    price: PRICE / 2n,
    bootstrap: [honest.bootstrap],
    // Its receipts claim one wei more consumed than the voucher allows, signed with the node's own key.
    publicApi: (own, operator) =>
      forgingProxy(
        net,
        cleanup,
        () => own,
        operator,
        net.adapters.robot.id,
        (r) => ({ ...r, cumulativeConsumed: r.voucherAmount + 1n }),
      ),
  });
  payer = await newPayer(net, [honest.operator.address, liar.operator.address]);
  dataDir = await tempDir(cleanup, "openlora-payer-");
  client = await newClient(net, cleanup, payer.account, { bootstrap: [honest.bootstrap], dataDir });
  await routedTo(client, net.adapters.robot.id, [liar.operator.address, honest.operator.address]);
});
afterAll(async () => {
  await cleanup.run();
  await net.chain.conn.close();
});

/** The node's own record of the payer's channel for a listing. */
async function nodeChannel(node: PaidNode, listingId: string) {
  const channels = await node.service.ledger.channels();
  return channels.find((c) => c.payer === payer.account.address.toLowerCase() && c.listingId === listingId);
}

describe("paying through the SDK", () => {
  it("pays a whole completion and a streamed chat answer on one channel, adopting each verified receipt", async () => {
    const dragon = net.adapters.dragon.id;
    const first = await client.createCompletion({ model: dragon, prompt: PROMPT, max_tokens: 8, temperature: 0 });
    const text = (first.choices as { text: string }[])[0].text;
    expect(text.length).toBeGreaterThan(0);
    const p1 = first.openlora;
    expect(p1.node.operator).toBe(honest.operator.address);
    expect(p1.listingId).toBe(net.listings.dragon);
    const r1 = p1.receipt!;
    expect(r1.cost).toBe(PRICE * (r1.promptTokens + r1.completionTokens));
    expect(r1.cumulativeConsumed).toBe(r1.cost);
    // The first voucher on a channel is the request's most: price x (prompt + max_tokens).
    expect(p1.voucherAmount).toBe(PRICE * (r1.promptTokens + 8n));
    expect(first.usage).toEqual({
      prompt_tokens: Number(r1.promptTokens),
      completion_tokens: Number(r1.completionTokens),
      total_tokens: Number(r1.promptTokens + r1.completionTokens),
    });

    // The listing id names the same channel (node, listing) as the content hash did.
    const stream = await client.createChatCompletion({
      model: net.listings.dragon,
      messages: [{ role: "user", content: "Tell me about a dragon" }],
      max_tokens: 6,
      stream: true,
    });
    const pieces: string[] = [];
    for await (const chunk of stream) {
      const delta = (chunk.choices as { delta?: { content?: string } }[])[0]?.delta?.content;
      if (delta) pieces.push(delta);
    }
    const p2 = await stream.payment;
    const r2 = p2.receipt!;
    expect(pieces.length).toBeGreaterThan(0);
    expect(r2.cumulativeConsumed).toBe(r1.cost + r2.cost);
    expect(p2.voucherAmount).toBe(r1.cumulativeConsumed + PRICE * (r2.promptTokens + 6n));

    // The client's state on disk and the node's ledger agree to the wei.
    const channel = await client.state.channel(honest.operator.address, net.listings.dragon);
    expect(channel).toMatchObject({
      consumed: r2.cumulativeConsumed,
      signed: p2.voucherAmount,
      accepted: p2.voucherAmount,
      requests: 2,
    });
    const onNode = await nodeChannel(honest, net.listings.dragon);
    expect(onNode?.consumed).toBe(r2.cumulativeConsumed);
    expect(onNode?.latest.cumulativeAmount).toBe(p2.voucherAmount);
  });

  it("continues the channel after a restart from the state on disk", async () => {
    const before = await client.state.channel(honest.operator.address, net.listings.dragon);
    const again = await newClient(net, cleanup, payer.account, { bootstrap: [honest.bootstrap], dataDir });
    await again.waitForRoute(net.adapters.dragon.id);
    const answer = await again.createCompletion({ model: net.adapters.dragon.id, prompt: "The dragon", max_tokens: 4 });
    const r = answer.openlora.receipt!;
    expect(answer.openlora.voucherAmount).toBe(before.consumed + PRICE * (r.promptTokens + 4n));
    expect(r.cumulativeConsumed).toBe(before.consumed + r.cost);
    await again.stop();
  });

  it("keeps concurrent requests on one channel consistent with the node", async () => {
    const ocean = net.adapters.ocean.id;
    const answers = await Promise.all(
      [1, 2, 3].map((i) => client.createCompletion({ model: ocean, prompt: `${PROMPT} ${i}`, max_tokens: 5 })),
    );
    const costs = answers.reduce((sum, a) => sum + a.openlora.cost, 0n);
    const channel = await client.state.channel(honest.operator.address, net.listings.ocean);
    const onNode = await nodeChannel(honest, net.listings.ocean);
    expect(onNode?.consumed).toBe(costs);
    expect(channel.consumed).toBe(costs);
    expect(onNode?.requests).toBe(3);
  });

  it("sends a request to the node the caller names, past the routing's choice", async () => {
    const robot = net.adapters.robot.id;
    expect((await client.route(robot)).candidates[0].announcement.operator).toBe(liar.operator.address);
    const pinned = await client.createCompletion(
      { model: robot, prompt: PROMPT, max_tokens: 3 },
      { node: honest.operator.address },
    );
    expect(pinned.openlora.node.operator).toBe(honest.operator.address);
    expect(pinned.openlora.receipt?.node).toBe(honest.operator.address);
  });

  it("discovers nodes through a node's GET /v1/peers", async () => {
    const viaHttp = await newClient(net, cleanup, payer.account, {
      discovery: { peersFrom: [honest.url] },
      dataDir: await tempDir(cleanup, "openlora-payer-"),
    });
    const candidates = await viaHttp.waitForRoute(net.adapters.dragon.id);
    expect(candidates[0].announcement.operator).toBe(honest.operator.address);
    await viaHttp.stop();
  });

  it("lets the official openai client pay through client.fetch, whole and streamed", async () => {
    const openai = new OpenAI({
      baseURL: "http://openlora.invalid/v1",
      apiKey: "unused",
      fetch: client.fetch,
      maxRetries: 0,
    });
    const whole = await openai.completions.create({ model: net.adapters.dragon.id, prompt: PROMPT, max_tokens: 5 });
    expect(whole.choices[0].text.length).toBeGreaterThan(0);
    expect((whole as unknown as { receipt: { node: string } }).receipt.node).toBe(honest.operator.address);
    const stream = await openai.chat.completions.create({
      model: net.adapters.ocean.id,
      messages: [{ role: "user", content: "The sea" }],
      max_tokens: 5,
      stream: true,
    });
    let text = "";
    let receipt: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      receipt ??= (chunk as unknown as { receipt?: unknown }).receipt;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(receipt).toMatchObject({ node: honest.operator.address, payer: payer.account.address });
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toEqual(
      expect.arrayContaining([net.adapters.dragon.id, net.adapters.robot.id]),
    );
  });
});

describe("refusals before any voucher is signed", () => {
  it("names an unknown model, a payer without deposit, and a request over the spending limit", async () => {
    await expect(client.createCompletion({ model: `0x${"ab".repeat(32)}`, prompt: PROMPT })).rejects.toThrow(
      UnknownModelError,
    );
    await expect(client.createCompletion({ model: "no-such-alias", prompt: PROMPT })).rejects.toThrow(
      /unknown model "no-such-alias"/,
    );

    const poor = await newKey(net.chain);
    const broke = await newClient(net, cleanup, poor.account, { bootstrap: [honest.bootstrap] });
    await expect(broke.waitForRoute(net.adapters.dragon.id)).rejects.toThrow(NoDepositError);
    await broke.stop();

    const limited = await newClient(net, cleanup, payer.account, {
      bootstrap: [honest.bootstrap],
      limits: { perRequest: PRICE * 20n },
    });
    await limited.waitForRoute(net.adapters.dragon.id);
    const error = await limited
      .createCompletion({ model: net.adapters.dragon.id, prompt: PROMPT, max_tokens: 50 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SpendingLimitError);
    expect((error as SpendingLimitError).limit).toBe("per_request");
    expect(await limited.state.read()).toMatchObject({ channels: [], spend: [] });
    await limited.stop();
  });
});

describe("a node whose receipt claims more than was signed", () => {
  it("is detected: the receipt is kept as evidence, its figure is not adopted, and the node is avoided", async () => {
    const robot = net.adapters.robot.id;
    const error = await client
      .createCompletion({ model: robot, prompt: PROMPT, max_tokens: 4 }, { node: liar.operator.address })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReceiptError);
    expect((error as ReceiptError).code).toBe("receipt_overclaim");
    expect((error as ReceiptError).node).toBe(liar.operator.address);
    expect((error as Error).message).toMatch(
      /claims \d+ wei consumed on the channel, more than the \d+ wei the payer signed/,
    );
    // The text was delivered; only the payment is disputed.
    expect(
      ((error as ReceiptError).completion as { choices: { text: string }[] }).choices[0].text.length,
    ).toBeGreaterThan(0);

    const state = await client.state.read();
    expect(state.disputes).toHaveLength(1);
    expect(state.disputes[0]).toMatchObject({
      node: liar.operator.address,
      code: "receipt_overclaim",
      listingId: net.listings.robot,
    });
    const channel = await client.state.channel(liar.operator.address, net.listings.robot);
    expect(channel.consumed).toBe(0n);
    expect(channel.accepted).toBe(state.disputes[0].voucherAmount);

    // The next robot request goes to the honest node; a restarted client avoids the liar too.
    const next = await client.createCompletion({ model: robot, prompt: PROMPT, max_tokens: 4 });
    expect(next.openlora.node.operator).toBe(honest.operator.address);
    const restarted = await newClient(net, cleanup, payer.account, { bootstrap: [honest.bootstrap], dataDir });
    await restarted.waitForRoute(robot);
    const { candidates } = await restarted.route(robot);
    expect(candidates.map((c) => c.announcement.operator)).toEqual([honest.operator.address]);
    await restarted.stop();

    // What the liar may settle is the voucher it holds, whatever its receipt claimed.
    const held = (await liar.service.ledger.channels()).find((c) => c.listingId === net.listings.robot);
    expect(held?.latest.cumulativeAmount).toBe(state.disputes[0].voucherAmount);
  });
});
