// Paid mode on a Hardhat chain: vouchers accepted and charged by usage, 402 with the amount required when short,
// replayed or lower vouchers refused, concurrent requests on one channel never spending the same growth twice,
// signed receipts that verify, and settlement paying operator, treasury and contributors exactly what the ledger
// says, to the wei.
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EscrowBalances } from "../../node/api/payment/escrow-balances.ts";
import { parseReceiptJson, verifyReceipt } from "../../node/chain/index.ts";
import type { Chain } from "../contracts/fixture.ts";
import { postJson, rawRequest, sseData, type RawResponse, type TestNode } from "./helpers.ts";
import {
  demoAdapterIds,
  fixedRequest,
  maxCost,
  paidChain,
  paidPost,
  PRICE,
  PROMPT_TOKENS,
  startPaidNode,
  type PaidSetup,
  type Wallet,
} from "./paid-helpers.ts";

let setup: PaidSetup;
let chain: Chain;
let t: TestNode;

beforeAll(async () => {
  setup = await paidChain(await demoAdapterIds());
  chain = setup.chain;
  t = await startPaidNode(setup);
});
afterAll(async () => {
  await t?.node.stop();
});

const json = (res: RawResponse) => JSON.parse(res.body) as Record<string, any>;

/** The receipt of an answer, verified against the node's address; returns it. */
async function verifiedReceipt(answer: Record<string, any>) {
  const { receipt, signature } = parseReceiptJson(answer.receipt);
  expect(await verifyReceipt(receipt, signature, chain.domain, setup.operator.address)).toBe(true);
  return receipt;
}

describe("paid requests", () => {
  it("refuses requests that cannot be paid, saying why", async () => {
    const none = await postJson(t.node.url, "/v1/completions", fixedRequest("dragon", 8));
    expect(none.status).toBe(402);
    expect(json(none).error).toMatchObject({
      code: "voucher_required",
      type: "payment_required",
      required: maxCost(8).toString(),
      channel: { node: setup.operator.address, price_per_token: PRICE.toString() },
    });
    const base = await paidPost(
      t,
      setup,
      chain.payerA,
      setup.listings.dragon,
      maxCost(8),
      fixedRequest("stories260K", 8),
    );
    expect([base.status, json(base).error.code]).toEqual([400, "model_not_sold"]);

    const cases: [string, Promise<RawResponse>, string][] = [
      [
        "for another node",
        paidPost(t, setup, chain.payerA, setup.listings.dragon, maxCost(8), fixedRequest("dragon", 8), {
          node: chain.nodeB.account.address,
        }),
        "voucher_wrong_node",
      ],
      [
        "signed for another chain",
        paidPost(t, setup, chain.payerA, setup.listings.dragon, maxCost(8), fixedRequest("dragon", 8), {
          domain: { ...chain.domain, chainId: 1 },
        }),
        "voucher_bad_signature",
      ],
      [
        "naming another adapter's listing",
        paidPost(t, setup, chain.payerA, setup.listings.ocean, maxCost(8), fixedRequest("dragon", 8)),
        "voucher_wrong_listing",
      ],
      [
        "malformed",
        postJson(t.node.url, "/v1/completions", fixedRequest("dragon", 8), { "x-openlora-voucher": "{nope" }),
        "voucher_invalid",
      ],
    ];
    for (const [what, sent, code] of cases) {
      const res = await sent;
      expect({ what, status: res.status, code: json(res).error.code }).toEqual({ what, status: 400, code });
    }
  });

  it("accepts growing vouchers, charges what was used, and signs receipts; replayed, lower or short ones get 402", async () => {
    const payer = chain.payerA;
    await chain.depositFor(payer, setup.operator.address, maxCost(8) * 10n);
    const listing = setup.listings.dragon;
    const cost = maxCost(8); // ignore_eos: the request uses all of its max_tokens

    const first = await paidPost(t, setup, payer, listing, cost, fixedRequest("dragon", 8));
    expect(first.status).toBe(200);
    const r1 = await verifiedReceipt(json(first));
    expect(r1).toMatchObject({
      cost,
      cumulativeConsumed: cost,
      voucherAmount: cost,
      promptTokens: BigInt(PROMPT_TOKENS),
    });
    expect(r1.completionTokens).toBe(8n);
    expect(json(first).usage).toEqual({
      prompt_tokens: PROMPT_TOKENS,
      completion_tokens: 8,
      total_tokens: PROMPT_TOKENS + 8,
    });

    const replay = await paidPost(t, setup, payer, listing, cost, fixedRequest("dragon", 8));
    expect(replay.status).toBe(402);
    expect(json(replay).error).toMatchObject({
      code: "voucher_not_growing",
      required: (2n * cost).toString(),
      channel: { accepted: cost.toString(), consumed: cost.toString(), reserved: "0" },
    });
    const lower = await paidPost(t, setup, payer, listing, cost - 1n, fixedRequest("dragon", 8));
    expect([lower.status, json(lower).error.code]).toEqual([402, "voucher_not_growing"]);
    const short = await paidPost(t, setup, payer, listing, 2n * cost - 1n, fixedRequest("dragon", 8));
    expect(short.status).toBe(402);
    expect(json(short).error).toMatchObject({ code: "voucher_too_low", required: (2n * cost).toString() });

    // A request that stops early is charged what it used: the voucher's headroom carries to the next one.
    const early = await paidPost(
      t,
      setup,
      payer,
      listing,
      2n * cost,
      fixedRequest("dragon", 8, { max_tokens: 8, stop: ["."] }),
    );
    expect(early.status).toBe(200);
    const r2 = await verifiedReceipt(json(early));
    const usage = json(early).usage as { prompt_tokens: number; completion_tokens: number };
    expect(r2.cost).toBe(PRICE * BigInt(usage.prompt_tokens + usage.completion_tokens));
    expect(r2.cumulativeConsumed).toBe(cost + r2.cost);

    // The ledger holds each request with its voucher, receipt and cost.
    const record = await t.node.ledger.getRequest(r2.requestId);
    expect(record).toMatchObject({ cost: r2.cost, receipt: { cumulativeConsumed: r2.cumulativeConsumed } });
    expect(record!.voucher!.cumulativeAmount).toBe(2n * cost);
  });

  it("streams a paid answer whose last chunk carries the receipt", async () => {
    const payer = chain.payerB;
    await chain.depositFor(payer, setup.operator.address, maxCost(6) * 4n);
    const res = await paidPost(
      t,
      setup,
      payer,
      setup.listings.ocean,
      maxCost(6),
      fixedRequest("ocean", 6, { stream: true, stream_options: { include_usage: true } }),
    );
    expect(res.status).toBe(200);
    const events = sseData(res.body);
    expect(events.at(-1)).toBe("[DONE]");
    const last = JSON.parse(events.at(-2)!);
    expect(last.usage).toEqual({ prompt_tokens: PROMPT_TOKENS, completion_tokens: 6, total_tokens: PROMPT_TOKENS + 6 });
    const receipt = await verifiedReceipt(last);
    expect(receipt).toMatchObject({
      cost: maxCost(6),
      cumulativeConsumed: maxCost(6),
      listingId: setup.listings.ocean,
    });
  });

  it("refuses a voucher the payer's deposit for this node cannot cover, and accepts it once a deposit lands", async () => {
    const payer = chain.payerC;
    await chain.depositFor(payer, setup.operator.address, maxCost(4) - 1n);
    const request = () => paidPost(t, setup, payer, setup.listings.robot, maxCost(4), fixedRequest("robot", 4));
    const refused = await request();
    expect(refused.status).toBe(402);
    expect(json(refused).error).toMatchObject({
      code: "insufficient_escrow",
      available: (maxCost(4) - 1n).toString(),
      needed: maxCost(4).toString(),
    });
    await chain.depositFor(payer, setup.operator.address, 1n);
    expect((await request()).status).toBe(200);
  });

  it("follows the payer's deposit through the escrow's events, not only through refusals", async () => {
    const payer = chain.payerB;
    const operator = setup.operator.address;
    const balances = new EscrowBalances({
      client: chain.publicClient,
      escrow: chain.deployment.contracts.InferenceEscrow,
      node: operator,
    });
    balances.watch(20);
    try {
      const before = await balances.available(payer.account.address);
      // A withdrawal request takes its amount out of what vouchers may draw on: the cached figure drops with it.
      await chain.wait(chain.as(payer).escrow.write.requestWithdraw([operator, 1000n]));
      await expect.poll(() => balances.available(payer.account.address)).toBe(before - 1000n);
      await chain.wait(chain.as(payer).escrow.write.cancelWithdraw([operator]));
      await expect.poll(() => balances.available(payer.account.address)).toBe(before);
    } finally {
      balances.stop();
    }
  });

  it("never lets concurrent requests on one channel spend the same voucher growth twice", async () => {
    const payer = chain.stranger;
    await chain.depositFor(payer, setup.operator.address, maxCost(4) * 100n);
    const listing = setup.listings.dragon;
    // Six requests at once on one voucher that covers one of them: exactly one runs.
    const same = await Promise.all(
      Array.from({ length: 6 }, () => paidPost(t, setup, payer, listing, maxCost(4), fixedRequest("dragon", 4))),
    );
    expect(same.map((r) => r.status).sort()).toEqual([200, 402, 402, 402, 402, 402]);
    for (const r of same.filter((x) => x.status === 402)) expect(json(r).error.code).toBe("voucher_not_growing");

    // Six at once with vouchers growing by one request's cost each, arriving in any order: what runs never
    // reserves more than the highest voucher accepted.
    const base = maxCost(4);
    const growing = await Promise.all(
      Array.from({ length: 6 }, (_, k) =>
        paidPost(t, setup, payer, listing, base + BigInt(k + 1) * maxCost(4), fixedRequest("dragon", 4)),
      ),
    );
    const accepted = growing.flatMap((r, k) => (r.status === 200 ? [base + BigInt(k + 1) * maxCost(4)] : []));
    expect(accepted.length).toBeGreaterThanOrEqual(1);
    const highest = accepted.reduce((a, b) => (a > b ? a : b));
    const consumed = base + BigInt(accepted.length) * maxCost(4);
    expect(consumed).toBeLessThanOrEqual(highest);
    const channel = await t.node.ledger.channel({
      payer: payer.account.address,
      node: setup.operator.address,
      listingId: listing,
    });
    expect(channel).toMatchObject({ consumed, requests: 1 + accepted.length });
    expect(channel!.latest.cumulativeAmount).toBe(highest);
  });
});

describe("settlement", () => {
  it("pays operator, treasury and contributors exactly what the ledger says", async () => {
    const escrow = chain.read.escrow;
    const token = chain.read.token;
    const operator = setup.operator.address;
    const treasury = chain.treasury.account.address;
    const unsettled = await t.node.ledger.unsettledChannels();
    expect(unsettled.length).toBeGreaterThanOrEqual(4);
    const payers = [...new Set(unsettled.map((c) => c.payer))] as Hex[];
    const before = {
      operator: await token.read.balanceOf([operator]),
      treasury: await token.read.balanceOf([treasury]),
      deposits: await Promise.all(payers.map((p) => escrow.read.balanceOf([p, operator]))),
      accrued: await Promise.all(Object.values(setup.listings).map((l) => escrow.read.accrued([l]))),
    };

    const job = t.node.paid!.settlement;
    expect(await job.settleNow()).toBe("sent");
    await job.pass(); // the transaction is mined: the pass reconciles it
    const settlements = [];
    for await (const s of t.node.ledger.settlements()) settlements.push(s);
    expect(settlements).toHaveLength(1);
    const [batch] = settlements;
    expect(batch.status).toBe("confirmed");
    expect(batch.outcomes!.every((o) => o.status === "paid")).toBe(true);

    // Each voucher paid its channel's latest amount; the split is done per voucher, rounding down.
    let fees = 0n;
    let toOperator = 0n;
    const shares = new Map<string, bigint>();
    batch.vouchers.forEach((v, i) => {
      const outcome = batch.outcomes![i] as { status: "paid"; amount: bigint };
      const channel = unsettled.find((c) => c.payer === v.payer && c.listingId === v.listingId)!;
      expect(outcome.amount).toBe(channel.unsettled);
      const fee = (outcome.amount * 500n) / 10_000n;
      const share = (outcome.amount * 2000n) / 10_000n;
      fees += fee;
      toOperator += outcome.amount - fee - share;
      shares.set(v.listingId, (shares.get(v.listingId) ?? 0n) + share);
    });
    expect(await token.read.balanceOf([operator])).toBe(before.operator + toOperator);
    expect(await token.read.balanceOf([treasury])).toBe(before.treasury + fees);
    for (const [i, listing] of Object.values(setup.listings).entries()) {
      expect(await escrow.read.accrued([listing])).toBe(before.accrued[i] + (shares.get(listing.toLowerCase()) ?? 0n));
    }
    for (const [i, payer] of payers.entries()) {
      const paidByPayer = unsettled.filter((c) => c.payer === payer).reduce((n, c) => n + c.unsettled, 0n);
      expect(await escrow.read.balanceOf([payer, operator])).toBe(before.deposits[i] - paidByPayer);
    }
    for (const c of unsettled) {
      expect(await escrow.read.settled([c.payer, operator, c.listingId])).toBe(c.latest.cumulativeAmount);
    }
    const totals = await t.node.ledger.totals();
    expect(totals.settlement.amountPaid).toBe(unsettled.reduce((n, c) => n + c.unsettled, 0n));
    expect(await t.node.ledger.unsettledChannels()).toEqual([]);

    // Contributors claim their weight of the pool, to the wei.
    const listing = setup.listings.dragon;
    const pool = await escrow.read.accrued([listing]);
    for (const c of setup.contributors) {
      expect(await escrow.read.claimable([listing, c.address])).toBe((pool * BigInt(c.weightBps)) / 10_000n);
    }

    const metrics = (await rawRequest(t.node.url, "GET", "/metrics")).body;
    expect(metrics).toMatch(new RegExp(`^openlora_settlement_paid_wei ${totals.settlement.amountPaid}$`, "m"));
    expect(metrics).toMatch(/^openlora_settlement_batch_gas_count 1$/m);

    // The payer's balance is read anew after the settlement: a voucher covering the rest of the deposit passes.
    const payer = chain.payerA as Wallet;
    const channel = await t.node.ledger.channel({
      payer: payer.account.address,
      node: operator,
      listingId: setup.listings.dragon,
    });
    const next = channel!.latest.cumulativeAmount + maxCost(8);
    const after = await paidPost(t, setup, payer, setup.listings.dragon, next, fixedRequest("dragon", 8));
    expect(after.status).toBe(200);
  });
});
