// The attacks of issue 10, each performed as a public mempool allows: automine off, the victim's transaction sent
// first, then the attacker's with a higher priority fee, so that they are mined AHEAD of it in the same block.
// Each test checks the ordering in the block (transaction index), then that the attack took nothing: the honest
// node is paid what its signed voucher owes, contributors get their share, the attacker gets nothing it was not owed.
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { keccak256, toHex, type Hex, type TransactionReceipt } from "viem";
import { listingIdOf } from "../../node/chain/listing.ts";
import { settlementFromReceipt } from "../../node/chain/settlement.ts";
import {
  contentHashOf,
  createChain,
  E,
  expectRevert,
  LISTING_SIZE,
  type Chain,
  type SignedVoucher,
} from "./fixture.ts";

const DAY = 86400n;

let ch: Chain;
let snap: Hex;
let X: Hex; // the honest listing: c1 50%, c2 30%, c3 20%
beforeAll(async () => {
  ch = await createChain();
  await ch.stakeNode(ch.nodeA, E(100));
  X = await ch.registerListing(
    ch.adapterOwner,
    "X",
    [ch.c1.account.address, ch.c2.account.address, ch.c3.account.address],
    [5000, 3000, 2000],
  );
  await ch.depositFor(ch.payerA, ch.nodeA, E(100));
});
beforeEach(async () => {
  snap = await ch.snapshot();
});
afterEach(async () => {
  await ch.revertTo(snap);
});

/** The per-voucher outcomes of a mined settle. */
function outcomes(receipt: TransactionReceipt) {
  return settlementFromReceipt(receipt, ch.deployment.contracts.InferenceEscrow).outcomes.map((o) =>
    o.kind === "settled" ? { settled: o.amount } : { skipped: o.reason },
  );
}
/** Positions in the block, in entry order. */
const order = (receipts: TransactionReceipt[]) => receipts.map((r) => r.transactionIndex);
const settleBy =
  (node: Chain["nodeA"], items: SignedVoucher[]) => (fees: Parameters<Parameters<Chain["race"]>[0]["send"]>[0]) =>
    ch.as(node).escrow.write.settle([items.map((i) => i.voucher), items.map((i) => i.signature)], fees);

describe("issue 10 attacks, each mined ahead of its victim in the same block", () => {
  it("1. self-settlement front-run: the payer's own node cannot draw on the deposit for the honest node", async () => {
    const payer = ch.payerA;
    const evil = ch.attacker; // the payer's accomplice: a cheap staked node and a listing paying it 100%
    await ch.stakeNode(evil, E(100));
    const Z = await ch.registerListing(evil, "Z", [evil.account.address], [10000]);
    const honest = await ch.signed(payer, ch.nodeA, X, E(100)); // the whole deposit, earned by nodeA
    const self = await ch.signed(payer, evil, Z, E(100));
    const evilBefore = await ch.tokenBalance(evil.account.address);
    const nodeBefore = await ch.tokenBalance(ch.nodeA.account.address);

    const [victim, attack] = await ch.race(
      { tipGwei: 1, send: settleBy(ch.nodeA, [honest]) },
      { tipGwei: 100, send: settleBy(evil, [self]) },
    );
    expect(order([attack, victim])).toEqual([0, 1]);
    expect(outcomes(attack)).toEqual([{ skipped: "InsufficientFunds" }]); // nothing deposited for the evil node
    expect(outcomes(victim)).toEqual([{ settled: E(100) }]);
    expect(await ch.tokenBalance(evil.account.address)).toBe(evilBefore);
    expect(await ch.read.escrow.read.accrued([Z])).toBe(0n);
    expect((await ch.tokenBalance(ch.nodeA.account.address)) - nodeBefore).toBe(E(75)); // 100 - 5% fee - 20% share
    expect(await ch.read.escrow.read.accrued([X])).toBe(E(20));
    expect(await ch.deposit(payer, ch.nodeA)).toBe(0n);
  });

  it("2. retirement just before the settle: a retired listing's earned voucher still settles", async () => {
    const owner = ch.adapterOwner; // colludes with the payer
    const earned = await ch.signed(ch.payerA, ch.nodeA, X, E(60));
    const [victim, retire, request] = await ch.race(
      { tipGwei: 1, send: settleBy(ch.nodeA, [earned]) },
      { tipGwei: 100, send: (fees) => ch.as(owner).adapterRegistry.write.retire([X], fees) },
      {
        tipGwei: 90,
        send: (fees) => ch.as(ch.payerA).escrow.write.requestWithdraw([ch.nodeA.account.address, E(100)], fees),
      },
    );
    expect(order([retire, request, victim])).toEqual([0, 1, 2]);
    expect([retire.status, request.status]).toEqual(["success", "success"]);
    expect(await ch.read.adapterRegistry.read.isLive([X])).toBe(false); // no new use: nodes stop serving it
    expect(outcomes(victim)).toEqual([{ settled: E(60) }]);
    // contributors are paid for what was earned before the retirement
    expect(await ch.read.escrow.read.claimable([X, ch.c1.account.address])).toBe(E(6)); // 60 * 20% * 50%
    await ch.wait(ch.as(ch.c1).escrow.write.claim([[X]]));
    // the payer gets back only what was not earned
    await ch.increaseTime(DAY);
    const before = await ch.tokenBalance(ch.payerA.account.address);
    await ch.wait(ch.as(ch.payerA).escrow.write.withdraw([ch.nodeA.account.address]));
    expect((await ch.tokenBalance(ch.payerA.account.address)) - before).toBe(E(40));
  });

  it("3. listing squatting: copying an author's registration takes neither its listing nor its pay", async () => {
    const hash = contentHashOf("author-weights"); // public weights: anyone can compute the hash
    const register = (who: Chain["author"]) => (fees: Parameters<Parameters<Chain["race"]>[0]["send"]>[0]) =>
      ch
        .as(who)
        .adapterRegistry.write.register(
          [hash, contentHashOf("base-model"), 16, LISTING_SIZE, "ipfs://author", [who.account.address], [10000]],
          fees,
        );
    const [genuine, squat] = await ch.race(
      { tipGwei: 1, send: register(ch.author) },
      { tipGwei: 100, send: register(ch.attacker) },
    );
    expect(order([squat, genuine])).toEqual([0, 1]);
    expect([squat.status, genuine.status]).toEqual(["success", "success"]);
    const authors = listingIdOf(ch.author.account.address, hash);
    const squatters = listingIdOf(ch.attacker.account.address, hash);
    expect(authors).not.toBe(squatters);
    expect(await ch.read.adapterRegistry.read.listing([authors])).toMatchObject({
      registrant: ch.author.account.address,
      contentHash: hash,
      retired: false,
    });
    expect(await ch.read.adapterRegistry.read.contributorsOf([authors])).toEqual([
      [ch.author.account.address],
      [10000],
    ]);

    // the payer pays the author's listing; the squatter tries to retire it ahead of the settle, then its own
    const paid = await ch.signed(ch.payerA, ch.nodeA, authors, E(50));
    const [victim, retireTheirs, retireOwn] = await ch.race(
      { tipGwei: 1, send: settleBy(ch.nodeA, [paid]) },
      { tipGwei: 100, send: (fees) => ch.as(ch.attacker).adapterRegistry.write.retire([authors], fees) },
      { tipGwei: 90, send: (fees) => ch.as(ch.attacker).adapterRegistry.write.retire([squatters], fees) },
    );
    expect(order([retireTheirs, retireOwn, victim])).toEqual([0, 1, 2]);
    expect([retireTheirs.status, retireOwn.status]).toEqual(["reverted", "success"]);
    await expectRevert(ch.as(ch.attacker).adapterRegistry.write.retire([authors]), "NotRegistrant");
    expect(await ch.read.adapterRegistry.read.isLive([authors])).toBe(true); // the author can still list and serve
    expect(outcomes(victim)).toEqual([{ settled: E(50) }]);
    expect(await ch.read.escrow.read.claimable([authors, ch.author.account.address])).toBe(E(10));
    await expectRevert(ch.as(ch.attacker).escrow.write.claim([[authors, squatters]]), "NothingToClaim");
  });

  it("4. a matured withdrawal lapses: withdrawing days later in the settle's block fails", async () => {
    const node = ch.nodeA.account.address;
    await ch.wait(ch.as(ch.payerA).escrow.write.requestWithdraw([node, E(100)]));
    const req = await ch.read.escrow.read.withdrawalOf([ch.payerA.account.address, node]);
    // the node must not count on it
    expect(await ch.read.escrow.read.available([ch.payerA.account.address, node])).toBe(0n);
    await ch.increaseTime(2n * DAY + 3n * DAY); // delay + window, then days later the payer buys inference
    expect(await ch.read.escrow.read.available([ch.payerA.account.address, node])).toBe(E(100));
    const bought = await ch.signed(ch.payerA, ch.nodeA, X, E(80));
    const [victim, attack] = await ch.race(
      { tipGwei: 1, send: settleBy(ch.nodeA, [bought]) },
      { tipGwei: 100, send: (fees) => ch.as(ch.payerA).escrow.write.withdraw([node], fees) },
    );
    expect(order([attack, victim])).toEqual([0, 1]);
    expect(attack.status).toBe("reverted");
    await expectRevert(ch.as(ch.payerA).escrow.write.withdraw([node]), "WithdrawalLapsed", [req.expiresAt]);
    expect(outcomes(victim)).toEqual([{ settled: E(80) }]);
    expect(await ch.deposit(ch.payerA, ch.nodeA)).toBe(E(20));
  });

  it("4b. in the window, a node counting only what is available is paid though the payer withdraws first", async () => {
    const node = ch.nodeA.account.address;
    await ch.wait(ch.as(ch.payerA).escrow.write.requestWithdraw([node, E(50)]));
    const available = await ch.read.escrow.read.available([ch.payerA.account.address, node]);
    expect(available).toBe(E(50));
    const bought = await ch.signed(ch.payerA, ch.nodeA, X, available); // the node accepts no more than this
    await ch.increaseTime(DAY);
    const before = await ch.tokenBalance(ch.payerA.account.address);
    const [victim, attack] = await ch.race(
      { tipGwei: 1, send: settleBy(ch.nodeA, [bought]) },
      { tipGwei: 100, send: (fees) => ch.as(ch.payerA).escrow.write.withdraw([node], fees) },
    );
    expect(order([attack, victim])).toEqual([0, 1]);
    expect(attack.status).toBe("success");
    expect((await ch.tokenBalance(ch.payerA.account.address)) - before).toBe(E(50));
    expect(outcomes(victim)).toEqual([{ settled: E(50) }]);
  });

  it("5. unbonding shortened: a 1-wei re-request after a lowered period keeps the earlier sum's end", async () => {
    const node = ch.nodeB;
    await ch.stakeNode(node, E(200));
    await ch.wait(ch.as(node).nodeRegistry.write.requestUnstake([E(100)]));
    const end = (await ch.read.nodeRegistry.read.nodeOf([node.account.address])).unbondingEnd;
    const [rerequest, lower] = await ch.race(
      { tipGwei: 50, send: (fees) => ch.as(node).nodeRegistry.write.requestUnstake([1n], fees) },
      { tipGwei: 100, send: (fees) => ch.as(ch.deployer).nodeRegistry.write.setUnbondingPeriod([3600n], fees) },
    );
    expect(order([lower, rerequest])).toEqual([0, 1]);
    expect([lower.status, rerequest.status]).toEqual(["success", "success"]);
    const info = await ch.read.nodeRegistry.read.nodeOf([node.account.address]);
    expect(info.unbondingEnd).toBe(end);
    expect(info.unbonding).toBe(E(100) + 1n);
    await ch.increaseTime(3600);
    await expectRevert(ch.as(node).nodeRegistry.write.withdrawStake(), "StillUnbonding", [end]);
    // still slashable for the whole period
    await ch.wait(
      ch.as(ch.deployer).nodeRegistry.write.slash([node.account.address, E(150), keccak256(toHex("fraud"))]),
    );
    expect((await ch.read.nodeRegistry.read.nodeOf([node.account.address])).unbonding).toBe(E(50));
  });

  it("6a. admin fees: a change mined ahead of a settle does not apply to it; above the caps it reverts", async () => {
    const earned = await ch.signed(ch.payerA, ch.nodeA, X, E(100));
    const nodeBefore = await ch.tokenBalance(ch.nodeA.account.address);
    const nonce = await ch.publicClient.getTransactionCount({ address: ch.deployer.account.address });
    const [victim, tooHigh, change] = await ch.race(
      { tipGwei: 1, send: settleBy(ch.nodeA, [earned]) },
      { tipGwei: 100, send: (fees) => ch.as(ch.deployer).escrow.write.scheduleFees([10000, 0], { ...fees, nonce }) },
      {
        tipGwei: 100,
        send: (fees) => ch.as(ch.deployer).escrow.write.scheduleFees([1000, 5000], { ...fees, nonce: nonce + 1 }),
      },
    );
    expect(order([tooHigh, change, victim])).toEqual([0, 1, 2]);
    expect([tooHigh.status, change.status]).toEqual(["reverted", "success"]);
    expect(outcomes(victim)).toEqual([{ settled: E(100) }]);
    expect((await ch.tokenBalance(ch.nodeA.account.address)) - nodeBefore).toBe(E(75)); // the fees it was earned under
    expect(await ch.read.escrow.read.protocolFeeBps()).toBe(500);
    await expectRevert(ch.as(ch.deployer).escrow.write.scheduleFees([1001, 0]), "ProtocolFeeTooHigh");
    await expectRevert(ch.as(ch.deployer).escrow.write.scheduleFees([0, 5001]), "ContributorShareTooHigh");
  });

  it("6b. admin delay: no zero delay, so request-and-withdraw in one block cannot beat a settle", async () => {
    const node = ch.nodeA.account.address;
    const earned = await ch.signed(ch.payerA, ch.nodeA, X, E(100));
    const nonce = await ch.publicClient.getTransactionCount({ address: ch.payerA.account.address });
    const [victim, zero, request, withdraw] = await ch.race(
      { tipGwei: 1, send: settleBy(ch.nodeA, [earned]) },
      { tipGwei: 100, send: (fees) => ch.as(ch.deployer).escrow.write.setWithdrawDelay([0n], fees) },
      {
        tipGwei: 90,
        send: (fees) => ch.as(ch.payerA).escrow.write.requestWithdraw([node, E(100)], { ...fees, nonce }),
      },
      { tipGwei: 90, send: (fees) => ch.as(ch.payerA).escrow.write.withdraw([node], { ...fees, nonce: nonce + 1 }) },
    );
    expect(order([zero, request, withdraw, victim])).toEqual([0, 1, 2, 3]);
    expect([zero.status, request.status, withdraw.status]).toEqual(["reverted", "success", "reverted"]);
    await expectRevert(ch.as(ch.deployer).escrow.write.setWithdrawDelay([0n]), "DelayOutOfRange");
    expect(outcomes(victim)).toEqual([{ settled: E(100) }]);
  });

  it("6c. admin stake: a raised minimum mined ahead of a settle does not void what the node earned", async () => {
    const earned = await ch.signed(ch.payerA, ch.nodeA, X, E(100));
    const [victim, raise] = await ch.race(
      { tipGwei: 1, send: settleBy(ch.nodeA, [earned]) },
      { tipGwei: 100, send: (fees) => ch.as(ch.deployer).nodeRegistry.write.setMinStake([E(1000)], fees) },
    );
    expect(order([raise, victim])).toEqual([0, 1]);
    expect(raise.status).toBe("success");
    expect(await ch.read.nodeRegistry.read.isActive([ch.nodeA.account.address])).toBe(false); // no new business
    expect(outcomes(victim)).toEqual([{ settled: E(100) }]);
  });

  it("7. fee-on-transfer token: a payer withdrawing in a settle's block takes no more than arrived", async () => {
    const me = ch.deployer;
    const token = await ch.viem.deployContract("FeeOnTransferToken", [me.account.address, E(1_000_000)]);
    const reg = await ch.viem.deployContract("NodeRegistry", [
      token.address,
      me.account.address,
      me.account.address,
      E(1),
      DAY,
    ]);
    const listings = await ch.viem.deployContract("AdapterRegistry", []);
    const esc = await ch.viem.deployContract("InferenceEscrow", [
      token.address,
      reg.address,
      listings.address,
      me.account.address,
      me.account.address,
      500,
      2000,
      DAY,
      DAY,
    ]);
    const [honest, greedy, node] = [ch.payerA, ch.payerB, ch.nodeB];
    for (const w of [honest, greedy, node]) {
      await ch.wait(token.write.transfer([w.account.address, E(200)]));
      await ch.wait(token.write.approve([esc.address, E(200)], { account: w.account }));
      await ch.wait(token.write.approve([reg.address, E(200)], { account: w.account }));
    }
    await ch.wait(reg.write.stake([E(10), "0x01", ""], { account: node.account }));
    const hash = contentHashOf("fot");
    await ch.wait(listings.write.register([hash, hash, 4, 1n, "u", [ch.c1.account.address], [10000]]));
    const listing = listingIdOf(me.account.address, hash);
    await ch.wait(esc.write.deposit([node.account.address, E(100)], { account: honest.account })); // 99 credited
    await ch.wait(esc.write.deposit([node.account.address, E(100)], { account: greedy.account })); // 99 credited
    expect(await esc.read.balanceOf([greedy.account.address, node.account.address])).toBe(E(99));
    await expectRevert(
      esc.write.requestWithdraw([node.account.address, E(100)], { account: greedy.account }),
      "InsufficientBalance",
      [E(100), E(99)],
    );
    await ch.wait(esc.write.requestWithdraw([node.account.address, E(99)], { account: greedy.account }));
    await ch.increaseTime(DAY);
    const v = await ch.signed(honest, node, listing, E(99), { chainId: ch.chainId, verifyingContract: esc.address });
    const [victim, withdraw] = await ch.race(
      {
        tipGwei: 1,
        send: (fees) => esc.write.settle([[v.voucher], [v.signature]], { account: node.account, ...fees }),
      },
      {
        tipGwei: 100,
        send: (fees) => esc.write.withdraw([node.account.address], { account: greedy.account, ...fees }),
      },
    );
    expect(order([withdraw, victim])).toEqual([0, 1]);
    expect(withdraw.status).toBe("success");
    expect(settlementFromReceipt(victim, esc.address).outcomes.map((o) => o.kind)).toEqual(["settled"]);
    // everything credited has left, to the wei: the escrow holds only the contributor pool it owes
    const pool = await esc.read.accrued([listing]);
    expect(await token.read.balanceOf([esc.address])).toBe(pool);
  });
});
