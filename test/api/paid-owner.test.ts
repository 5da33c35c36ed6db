// Who owns a paid request in the engine: its payer. Each payer holds at most the engine's owner share (admission),
// and the node's operator paying its own node through the API is a payer like any other: held to the same share
// (only requests that name no owner, the operator's local CLI, are bound by the totals alone), charged, and paid
// out on chain like any payer's voucher: the operator gets back its deposit's spend less the protocol fee and the
// contributors' share. A request refused as busy costs nothing.
import { parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getContracts, parseReceiptJson, verifyReceipt } from "../../node/chain/index.ts";
import type { RawResponse, TestNode } from "./helpers.ts";
import { startTestNode } from "./helpers.ts";
import {
  demoAdapterIds,
  maxCost,
  operatorWallet,
  paidChain,
  paidOptions,
  paidPost,
  PRICE,
  PROMPT,
  PROMPT_TOKENS,
  type PaidSetup,
} from "./paid-helpers.ts";

/** Tokens (prompt + max_tokens) the engine holds in total; each owner may hold a quarter: 250. */
const MAX_TOKENS = 1000;
const OWNER_TOKENS = MAX_TOKENS / 4;

let setup: PaidSetup;
let t: TestNode;

beforeAll(async () => {
  setup = await paidChain(await demoAdapterIds());
  t = await startTestNode({
    paid: paidOptions(setup),
    settleOnStop: false,
    admission: { maxTokens: MAX_TOKENS, ownerShare: 1 / 4 },
  });
  const { chain, operator } = setup;
  await chain.depositFor(chain.payerA, operator.address, parseEther("1"));
  // The operator deposits for its own node, as any payer would.
  const escrow = chain.deployment.contracts.InferenceEscrow;
  const own = getContracts(
    { public: chain.publicClient, wallet: operatorWallet(chain, operator) },
    chain.deployment.contracts,
  );
  await chain.fund(operator.address, parseEther("1"));
  await chain.wait(own.token.write.approve([escrow, parseEther("1")]));
  await chain.wait(own.escrow.write.deposit([operator.address, parseEther("1")]));
});
afterAll(async () => {
  await t?.node.stop();
});

const json = (res: RawResponse) => JSON.parse(res.body) as Record<string, any>;

/** A greedy request for `tokens` in all (prompt + max_tokens). */
function sized(tokens: number) {
  return { model: "dragon", prompt: PROMPT, max_tokens: tokens - PROMPT_TOKENS, temperature: 0, ignore_eos: true };
}

describe("a paid request's owner is its payer", () => {
  it("holds every payer, the operator included, to the owner share, and a busy refusal costs nothing", async () => {
    const { chain, operator, listings } = setup;
    const over = OWNER_TOKENS + 1;
    for (const payer of [chain.payerA, operator]) {
      const busy = await paidPost(t, setup, payer, listings.dragon, PRICE * BigInt(over), sized(over));
      expect(busy.status).toBe(429);
      expect(json(busy).error).toMatchObject({ type: "rate_limit_error", code: "busy" });
      expect(json(busy).error.message).toMatch(/this owner holds 0 requests of 0 tokens .*250\)/);
      expect(Number(busy.headers["retry-after"])).toBeGreaterThan(0);
    }
    // Within the share, each is served; the refused voucher was given back, so the same one pays now.
    for (const payer of [chain.payerA, operator]) {
      const ok = await paidPost(t, setup, payer, listings.dragon, PRICE * BigInt(over), sized(OWNER_TOKENS));
      expect(ok.status).toBe(200);
      const { receipt, signature } = parseReceiptJson(json(ok).receipt);
      expect(receipt.payer).toBe(payer === operator ? operator.address : chain.payerA.account.address);
      expect(receipt.cost).toBe(PRICE * BigInt(OWNER_TOKENS));
      expect(await verifyReceipt(receipt, signature, chain.domain, operator.address)).toBe(true);
    }
    // Busy refusals left nothing in the ledger: two requests, each charged its own tokens.
    const totals = await t.node.ledger.totals();
    expect(totals.all).toMatchObject({ requests: 2, cost: 2n * PRICE * BigInt(OWNER_TOKENS) });
    expect(Object.keys(totals.payers).sort()).toEqual(
      [chain.payerA.account.address.toLowerCase(), operator.address.toLowerCase()].sort(),
    );
  });

  it("settles the operator's own voucher: the operator pays exactly the fee and the contributors' share", async () => {
    const { chain, operator, listings } = setup;
    const amount = maxCost(8);
    const res = await paidPost(t, setup, operator, listings.ocean, amount, {
      model: "ocean",
      prompt: PROMPT,
      max_tokens: 8,
      temperature: 0,
      ignore_eos: true,
    });
    expect(res.status).toBe(200);
    const channel = { payer: operator.address, node: operator.address, listingId: listings.ocean };
    expect(await t.node.ledger.unsettledAmount(channel)).toBe(amount);

    const before = await chain.read.token.read.balanceOf([operator.address]);
    const deposit = await chain.read.escrow.read.balanceOf([operator.address, operator.address]);
    const job = t.node.paid!.settlement;
    expect(await job.settleNow()).toBe("sent");
    await job.pass(); // the transaction is mined: the pass reconciles it
    expect(await t.node.ledger.unsettledAmount(channel)).toBe(0n);
    // Every unsettled voucher went in that batch (payer A's and the operator's dragon ones too): the operator's
    // wallet gains what its node earned on all of them and its own deposit pays its own vouchers.
    const batches = [];
    for await (const s of t.node.ledger.settlements()) batches.push(s);
    expect(batches).toHaveLength(1);
    expect(batches[0].status).toBe("confirmed");
    const paid = batches[0].outcomes!.map((o) => (o.status === "paid" ? o.amount : 0n));
    const net = (x: bigint) => x - (x * 500n) / 10_000n - (x * 2000n) / 10_000n;
    const earned = paid.reduce((n, x) => n + net(x), 0n);
    expect(await chain.read.token.read.balanceOf([operator.address])).toBe(before + earned);
    const ownSpend = batches[0].vouchers.reduce(
      (n, v, i) => (v.payer === operator.address.toLowerCase() ? n + paid[i] : n),
      0n,
    );
    // A channel settles at its latest voucher (consumed + the last request's unused max_tokens, at most).
    expect(ownSpend).toBe(amount + PRICE * BigInt(OWNER_TOKENS + 1));
    expect(await chain.read.escrow.read.balanceOf([operator.address, operator.address])).toBe(deposit - ownSpend);
  });
});
