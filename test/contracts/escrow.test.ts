// InferenceEscrow: per-node deposits, withdrawals (delay, window, lapse, cancel), settle (every skip reason),
// claims, scheduled and capped fees, the whole flow to the wei, a fee-on-transfer token, and the replay, forgery
// and reentrancy attacks the review found handled. Vouchers are signed with node/chain/voucher.ts. The attacks of
// issue 10 (same-block front-running) are in attacks.test.ts.
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  encodeFunctionData,
  keccak256,
  parseEventLogs,
  parseSignature,
  toHex,
  zeroAddress,
  type Address,
  type Hex,
} from "viem";
import { inferenceEscrowAbi, nodeRegistryAbi } from "../../node/chain/generated/abi.ts";
import { listingIdOf } from "../../node/chain/listing.ts";
import { SkipReason, signVoucher, type Voucher } from "../../node/chain/voucher.ts";
import { contentHashOf, createChain, E, expectRevert, peerIdOf, type Chain } from "./fixture.ts";

const FEE = 500n;
const SHARE = 2000n;
const DAY = 86400n;
const split = (amount: bigint, fee = FEE, share = SHARE) => {
  const f = (amount * fee) / 10000n;
  const s = (amount * share) / 10000n;
  return { fee: f, share: s, node: amount - f - s };
};

let ch: Chain;
let snap: Hex;
let X: Hex; // listing with contributors c1 50%, c2 30%, c3 20%
let Y: Hex; // listing with c1 100%
let escrow: Address;
let a: Address; // payerA
let nA: Address; // nodeA
beforeAll(async () => {
  ch = await createChain();
  escrow = ch.deployment.contracts.InferenceEscrow;
  a = ch.payerA.account.address;
  nA = ch.nodeA.account.address;
  await ch.stakeNode(ch.nodeA, E(100));
  await ch.stakeNode(ch.nodeB, E(100));
  X = await ch.registerListing(
    ch.adapterOwner,
    "X",
    [ch.c1.account.address, ch.c2.account.address, ch.c3.account.address],
    [5000, 3000, 2000],
  );
  Y = await ch.registerListing(ch.adapterOwner, "Y", [ch.c1.account.address], [10000]);
  await ch.depositFor(ch.payerA, ch.nodeA, E(1000));
  await ch.depositFor(ch.payerB, ch.nodeA, E(1000));
});
beforeEach(async () => {
  snap = await ch.snapshot();
});
afterEach(async () => {
  await ch.revertTo(snap);
});

describe("deposits", () => {
  it("deposit credits the payer's deposit for that node only, and emits", async () => {
    await ch.depositFor(ch.payerC, ch.nodeB, E(5));
    expect(await ch.deposit(ch.payerC, ch.nodeB)).toBe(E(5));
    expect(await ch.deposit(ch.payerC, ch.nodeA)).toBe(0n);
    const [ev] = await ch.read.escrow.getEvents.Deposited({ payer: ch.payerC.account.address }, { fromBlock: 0n });
    expect(ev.args).toMatchObject({ node: ch.nodeB.account.address, amount: E(5), balance: E(5) });
    const w = ch.as(ch.payerC).escrow.write;
    await expectRevert(w.deposit([nA, 0n]), "ZeroAmount");
    await expectRevert(w.deposit([zeroAddress, E(1)]), "ZeroAddress");
    await expectRevert(w.deposit([nA, E(1)]), "ERC20InsufficientAllowance");
  });

  async function permit(owner: Chain["payerC"], value: bigint, deadline: bigint) {
    const nonce = await ch.read.token.read.nonces([owner.account.address]);
    const sig = await owner.signTypedData({
      domain: {
        name: "OpenLoRA Token",
        version: "1",
        chainId: ch.chainId,
        verifyingContract: ch.deployment.contracts.OpenToken,
      },
      types: {
        Permit: [
          { name: "owner", type: "address" },
          { name: "spender", type: "address" },
          { name: "value", type: "uint256" },
          { name: "nonce", type: "uint256" },
          { name: "deadline", type: "uint256" },
        ],
      },
      primaryType: "Permit",
      message: { owner: owner.account.address, spender: escrow, value, nonce, deadline },
    });
    const { r, s, v } = parseSignature(sig);
    return { r, s, v: Number(v) };
  }

  it("depositWithPermit needs no prior approval and survives a front-run permit", async () => {
    const c = ch.payerC;
    await ch.fund(c.account.address, E(10));
    const deadline = 2n ** 40n;
    const p = await permit(c, E(4), deadline);
    await ch.wait(ch.as(c).escrow.write.depositWithPermit([nA, E(4), deadline, p.v, p.r, p.s]));
    expect(await ch.deposit(c, ch.nodeA)).toBe(E(4));
    // someone submits the permit first: the deposit still goes through on the allowance it set
    const q = await permit(c, E(6), deadline);
    await ch.wait(ch.as(ch.stranger).token.write.permit([c.account.address, escrow, E(6), deadline, q.v, q.r, q.s]));
    await ch.wait(ch.as(c).escrow.write.depositWithPermit([nA, E(6), deadline, q.v, q.r, q.s]));
    expect(await ch.deposit(c, ch.nodeA)).toBe(E(10));
    // a bad permit and no allowance: the transfer fails
    await expectRevert(
      ch.as(c).escrow.write.depositWithPermit([nA, E(1), deadline, q.v, q.r, q.s]),
      "ERC20InsufficientAllowance",
    );
  });
});

describe("withdrawals", () => {
  it("wait for the delay, then execute within the window; reverts name the problem", async () => {
    const w = ch.as(ch.payerA).escrow.write;
    await expectRevert(w.requestWithdraw([nA, 0n]), "ZeroAmount");
    await expectRevert(w.requestWithdraw([nA, E(1001)]), "InsufficientBalance", [E(1001), E(1000)]);
    await expectRevert(w.requestWithdraw([ch.nodeB.account.address, E(1)]), "InsufficientBalance", [E(1), 0n]);
    await expectRevert(w.withdraw([nA]), "NoWithdrawalPending");
    const r = await ch.wait(w.requestWithdraw([nA, E(300)]));
    const t = (await ch.publicClient.getBlock({ blockNumber: r.blockNumber })).timestamp;
    const req = await ch.read.escrow.read.withdrawalOf([a, nA]);
    expect(req).toEqual({ amount: E(300), availableAt: t + DAY, expiresAt: t + 2n * DAY });
    const [ev] = await ch.read.escrow.getEvents.WithdrawRequested({ payer: a, node: nA }, { fromBlock: r.blockNumber });
    expect(ev.args).toMatchObject({ amount: E(300), availableAt: t + DAY, expiresAt: t + 2n * DAY });
    await expectRevert(w.withdraw([nA]), "WithdrawalNotReady", [req.availableAt]);
    await ch.increaseTime(DAY);
    const before = await ch.tokenBalance(a);
    await ch.wait(w.withdraw([nA]));
    expect((await ch.tokenBalance(a)) - before).toBe(E(300));
    expect(await ch.deposit(ch.payerA, ch.nodeA)).toBe(E(700));
    expect((await ch.read.escrow.read.withdrawalOf([a, nA])).amount).toBe(0n);
    await expectRevert(w.withdraw([nA]), "NoWithdrawalPending");
    const [done] = await ch.read.escrow.getEvents.Withdrawn({ payer: a }, { fromBlock: 0n });
    expect(done.args).toMatchObject({ node: nA, amount: E(300), balance: E(700) });
  });

  it("a matured request lapses after the window; the amount is available to the node again", async () => {
    const w = ch.as(ch.payerA).escrow.write;
    await ch.wait(w.requestWithdraw([nA, E(400)]));
    expect(await ch.read.escrow.read.available([a, nA])).toBe(E(600));
    await ch.increaseTime(DAY);
    expect(await ch.read.escrow.read.available([a, nA])).toBe(E(600)); // matured, still pending
    const req = await ch.read.escrow.read.withdrawalOf([a, nA]);
    await ch.increaseTime(DAY);
    await expectRevert(w.withdraw([nA]), "WithdrawalLapsed", [req.expiresAt]);
    expect(await ch.read.escrow.read.available([a, nA])).toBe(E(1000));
    // requesting again starts a fresh delay
    await ch.wait(w.requestWithdraw([nA, E(400)]));
    await expectRevert(w.withdraw([nA]), "WithdrawalNotReady");
  });

  it("cancel makes the amount available again; a request above the later balance pays what is left", async () => {
    const w = ch.as(ch.payerA).escrow.write;
    await expectRevert(w.cancelWithdraw([nA]), "NoWithdrawalPending");
    await ch.wait(w.requestWithdraw([nA, E(1000)]));
    expect(await ch.read.escrow.read.available([a, nA])).toBe(0n);
    await ch.wait(w.cancelWithdraw([nA]));
    expect(await ch.read.escrow.read.available([a, nA])).toBe(E(1000));
    expect((await ch.read.escrow.getEvents.WithdrawCancelled({ payer: a }, { fromBlock: 0n })).length).toBe(1);
    // within the delay the deposit is still there for the node, which settles first
    const v = await ch.signed(ch.payerA, ch.nodeA, X, E(600));
    await ch.wait(w.requestWithdraw([nA, E(1000)]));
    expect((await ch.settle(ch.nodeA, [v])).paid).toBe(E(600));
    await ch.increaseTime(DAY);
    const before = await ch.tokenBalance(a);
    await ch.wait(w.withdraw([nA]));
    expect((await ch.tokenBalance(a)) - before).toBe(E(400)); // min(requested, what is left)
    expect(await ch.deposit(ch.payerA, ch.nodeA)).toBe(0n);
  });
});

describe("settle", () => {
  it("pays the growth from the deposit for the caller: fee to treasury, share to the pool, rest to it", async () => {
    const t0 = await ch.tokenBalance(ch.treasury.account.address);
    const n0 = await ch.tokenBalance(nA);
    const r1 = await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, X, E(10))]);
    expect(r1.paid).toBe(E(10));
    expect(r1.settled).toHaveLength(1);
    expect(r1.settled[0]).toEqual({ node: nA, payer: a, listingId: X, cumulativeAmount: E(10), amount: E(10) });
    const r2 = await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, X, E(25))]);
    expect(r2.paid).toBe(E(15)); // only the growth
    const s = split(E(10));
    const s2 = split(E(15));
    expect((await ch.tokenBalance(ch.treasury.account.address)) - t0).toBe(s.fee + s2.fee);
    expect((await ch.tokenBalance(nA)) - n0).toBe(s.node + s2.node);
    expect(await ch.read.escrow.read.accrued([X])).toBe(s.share + s2.share);
    expect(await ch.read.escrow.read.settled([a, nA, X])).toBe(E(25));
    expect(await ch.deposit(ch.payerA, ch.nodeA)).toBe(E(975));
    const [batch] = await ch.read.escrow.getEvents.BatchSettled(
      { node: nA },
      { fromBlock: r1.receipt.blockNumber, toBlock: r1.receipt.blockNumber },
    );
    expect(batch.args).toMatchObject({ count: 1n, paid: E(10), protocolFee: s.fee, contributorShare: s.share });
  });

  it("a voucher draws only on the deposit for its node", async () => {
    // payerA holds 1000 for nodeA and nothing for nodeB
    const r = await ch.settle(ch.nodeB, [await ch.signed(ch.payerA, ch.nodeB, X, E(1))]);
    expect(r.skipped.map((x) => x.reason)).toEqual(["InsufficientFunds"]);
    await ch.depositFor(ch.payerA, ch.nodeB, E(1));
    expect((await ch.settle(ch.nodeB, [await ch.signed(ch.payerA, ch.nodeB, X, E(1))])).paid).toBe(E(1));
    expect(await ch.deposit(ch.payerA, ch.nodeA)).toBe(E(1000));
    expect(await ch.deposit(ch.payerA, ch.nodeB)).toBe(0n);
  });

  it("reverts on mismatched lengths and for a caller that cannot settle", async () => {
    const v = await ch.signed(ch.payerA, ch.stranger, X, E(1));
    await expectRevert(ch.as(ch.nodeA).escrow.write.settle([[v.voucher], []]), "LengthMismatch");
    await expectRevert(ch.as(ch.stranger).escrow.write.settle([[v.voucher], [v.signature]]), "NodeCannotSettle", [
      ch.stranger.account.address,
    ]);
  });

  it("attack: settle by a slashed node or a node that unstaked", async () => {
    const v = await ch.signed(ch.payerA, ch.nodeA, X, E(1));
    await ch.wait(ch.as(ch.deployer).nodeRegistry.write.slash([nA, E(1), keccak256(toHex("fraud"))]));
    await expectRevert(ch.as(ch.nodeA).escrow.write.settle([[v.voucher], [v.signature]]), "NodeCannotSettle");
    const w = await ch.signed(ch.payerA, ch.nodeB, X, E(1));
    await ch.wait(ch.as(ch.nodeB).nodeRegistry.write.requestUnstake([E(100)]));
    await expectRevert(ch.as(ch.nodeB).escrow.write.settle([[w.voucher], [w.signature]]), "NodeCannotSettle");
  });

  it("attack: replaying a voucher, in a later batch or twice in one batch, pays once", async () => {
    const v = await ch.signed(ch.payerA, ch.nodeA, X, E(7));
    const r1 = await ch.settle(ch.nodeA, [v, v]);
    expect(r1.paid).toBe(E(7));
    expect(r1.skipped).toEqual([{ payer: a, listingId: X, reason: "NotGrowing" }]);
    const r2 = await ch.settle(ch.nodeA, [v]);
    expect(r2.paid).toBe(0n);
    expect(r2.skipped.map((s) => s.reason)).toEqual(["NotGrowing"]);
    // a lower cumulative amount signed later is stale too
    const lower = await ch.signed(ch.payerA, ch.nodeA, X, E(5));
    expect((await ch.settle(ch.nodeA, [lower])).skipped.map((s) => s.reason)).toEqual(["NotGrowing"]);
    expect(await ch.deposit(ch.payerA, ch.nodeA)).toBe(E(993));
  });

  it("attack: a voucher replayed on another channel (listing, payer) or with another amount is void", async () => {
    const v = await ch.signed(ch.payerA, ch.nodeA, X, E(3));
    const otherListing = { voucher: { ...v.voucher, listingId: Y }, signature: v.signature };
    const otherPayer = { voucher: { ...v.voucher, payer: ch.payerB.account.address }, signature: v.signature };
    const otherAmount = { voucher: { ...v.voucher, cumulativeAmount: E(4) }, signature: v.signature };
    const r = await ch.settle(ch.nodeA, [otherListing, otherPayer, otherAmount]);
    expect(r.paid).toBe(0n);
    expect(r.skipped.map((s) => s.reason)).toEqual(["BadSignature", "BadSignature", "BadSignature"]);
    expect((await ch.settle(ch.nodeA, [v])).paid).toBe(E(3));
  });

  it("attack: a voucher signed for another chain id, another escrow or the old domain version is void", async () => {
    const otherChain = await ch.signed(ch.payerA, ch.nodeA, X, E(1), { chainId: 1, verifyingContract: escrow });
    const otherEscrow = await ch.signed(ch.payerA, ch.nodeA, X, E(1), {
      chainId: ch.chainId,
      verifyingContract: ch.deployment.contracts.NodeRegistry,
    });
    const voucher: Voucher = { payer: a, node: nA, listingId: X, cumulativeAmount: E(1) };
    const v1 = await ch.payerA.signTypedData({
      domain: { name: "OpenLoRA Escrow", version: "1", chainId: ch.chainId, verifyingContract: escrow },
      types: {
        Voucher: [
          { name: "payer", type: "address" },
          { name: "node", type: "address" },
          { name: "adapterId", type: "bytes32" },
          { name: "cumulativeAmount", type: "uint256" },
        ],
      },
      primaryType: "Voucher",
      message: { payer: a, node: nA, adapterId: X, cumulativeAmount: E(1) },
    });
    const r = await ch.settle(ch.nodeA, [otherChain, otherEscrow, { voucher, signature: v1 }]);
    expect(r.paid).toBe(0n);
    expect(r.skipped.map((s) => s.reason)).toEqual(["BadSignature", "BadSignature", "BadSignature"]);
    // a second, real escrow on the same chain: a voucher for the first does not settle there
    const second = await ch.viem.deployContract("InferenceEscrow", [
      ch.deployment.contracts.OpenToken,
      ch.deployment.contracts.NodeRegistry,
      ch.deployment.contracts.AdapterRegistry,
      ch.deployer.account.address,
      ch.treasury.account.address,
      500,
      2000,
      DAY,
      DAY,
    ]);
    await ch.approve(ch.payerA, second.address, E(10));
    await ch.fund(a, E(10));
    await ch.wait(second.write.deposit([nA, E(10)], { account: ch.payerA.account }));
    const mine = await ch.signed(ch.payerA, ch.nodeA, X, E(1));
    const receipt = await ch.wait(
      second.write.settle([[mine.voucher], [mine.signature]], { account: ch.nodeA.account }),
    );
    const skipped = parseEventLogs({ abi: inferenceEscrowAbi, logs: receipt.logs, eventName: "VoucherSkipped" });
    expect(skipped.map((s) => s.args.reason)).toEqual([SkipReason.BadSignature]);
    expect(await second.read.balanceOf([a, nA])).toBe(E(10));
  });

  it("attack: a voucher for another node is skipped and stays good for its node", async () => {
    const v = await ch.signed(ch.payerA, ch.nodeA, X, E(3));
    const rB = await ch.settle(ch.nodeB, [v]);
    expect(rB.skipped.map((s) => s.reason)).toEqual(["WrongNode"]);
    expect((await ch.settle(ch.nodeA, [v])).paid).toBe(E(3));
  });

  it("skips tampered, forged, malformed and malleable signatures", async () => {
    const v = await ch.signed(ch.payerA, ch.nodeA, X, E(2));
    const tampered = { voucher: { ...v.voucher, cumulativeAmount: E(200) }, signature: v.signature };
    const forged = { voucher: v.voucher, signature: await signVoucher(ch.payerB, v.voucher, ch.domain) };
    const short = { voucher: v.voucher, signature: v.signature.slice(0, 130) as Hex };
    // the high-s twin of a valid signature: valid for ecrecover, refused by the contract
    const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const sig = parseSignature(v.signature);
    const highS = toHex(N - BigInt(sig.s), { size: 32 });
    const twinV = sig.yParity === 0 ? "1c" : "1b";
    const malleable = { voucher: v.voucher, signature: `${sig.r}${highS.slice(2)}${twinV}` as Hex };
    // v as 0/1 instead of 27/28
    const lowV = {
      voucher: v.voucher,
      signature: `${v.signature.slice(0, 130)}${sig.yParity === 0 ? "00" : "01"}` as Hex,
    };
    const r = await ch.settle(ch.nodeA, [tampered, forged, short, malleable, lowV]);
    expect(r.paid).toBe(0n);
    expect(r.skipped.map((s) => s.reason)).toEqual(Array(5).fill("BadSignature"));
    expect((await ch.settle(ch.nodeA, [v])).paid).toBe(E(2));
  });

  it("skips unknown and zero listings in any batch position; a retired listing still settles", async () => {
    const unknown = await ch.signed(ch.payerA, ch.nodeA, contentHashOf("unknown"), E(1));
    const zero = await ch.signed(ch.payerA, ch.nodeA, `0x${"00".repeat(32)}`, E(1));
    // the content hash itself is not a listing id
    const byHash = await ch.signed(ch.payerA, ch.nodeA, contentHashOf("X"), E(1));
    const good = await ch.signed(ch.payerA, ch.nodeA, X, E(1));
    const r = await ch.settle(ch.nodeA, [zero, good, zero, unknown, byHash]);
    expect(r.paid).toBe(E(1));
    expect(r.skipped.map((s) => s.reason)).toEqual(Array(4).fill("UnknownListing"));
    const signedBefore = await ch.signed(ch.payerA, ch.nodeA, X, E(2));
    await ch.wait(ch.as(ch.adapterOwner).adapterRegistry.write.retire([X]));
    expect(await ch.read.adapterRegistry.read.isLive([X])).toBe(false);
    expect((await ch.settle(ch.nodeA, [signedBefore])).paid).toBe(E(1));
  });

  it("skips a payer short of funds without advancing the channel", async () => {
    await ch.depositFor(ch.payerC, ch.nodeA, E(1));
    const v = await ch.signed(ch.payerC, ch.nodeA, Y, E(2));
    const r = await ch.settle(ch.nodeA, [v]);
    expect(r.skipped.map((s) => s.reason)).toEqual(["InsufficientFunds"]);
    expect(await ch.read.escrow.read.settled([ch.payerC.account.address, nA, Y])).toBe(0n);
    await ch.depositFor(ch.payerC, ch.nodeA, E(1));
    expect((await ch.settle(ch.nodeA, [v])).paid).toBe(E(2));
    expect(await ch.deposit(ch.payerC, ch.nodeA)).toBe(0n);
  });

  it("an empty batch pays nothing, moves no token and changes no channel", async () => {
    const holders = [escrow, nA, ch.treasury.account.address, a];
    const before = await Promise.all(holders.map((h) => ch.tokenBalance(h)));
    const deposit = await ch.deposit(ch.payerA, ch.nodeA);
    const r = await ch.settle(ch.nodeA, []);
    expect(r.paid).toBe(0n);
    expect(r.receipt.status).toBe("success");
    expect([r.settled, r.skipped]).toEqual([[], []]);
    // The only log is the batch's totals, all zero: not even a Transfer of 0.
    const logs = parseEventLogs({ abi: inferenceEscrowAbi, logs: r.receipt.logs });
    expect(logs.map((l) => [l.eventName, l.args])).toEqual([
      ["BatchSettled", { node: nA, count: 0n, paid: 0n, protocolFee: 0n, contributorShare: 0n }],
    ]);
    expect(r.receipt.logs).toHaveLength(1);
    expect(await Promise.all(holders.map((h) => ch.tokenBalance(h)))).toEqual(before);
    expect(await ch.deposit(ch.payerA, ch.nodeA)).toBe(deposit);
    expect(await ch.read.escrow.read.settled([a, nA, X])).toBe(0n);
  });

  it("whole flow: 3 contributors, 2 payers in one batch, every contributor claims; balances add up", async () => {
    const who = {
      payerA: a,
      payerB: ch.payerB.account.address,
      node: nA,
      treasury: ch.treasury.account.address,
      c1: ch.c1.account.address,
      c2: ch.c2.account.address,
      c3: ch.c3.account.address,
      escrow,
    };
    const balances = async () =>
      Object.fromEntries(
        await Promise.all(Object.entries(who).map(async ([k, x]) => [k, await ch.tokenBalance(x)] as const)),
      ) as Record<keyof typeof who, bigint>;
    const before = await balances();
    // awkward amounts so every split rounds
    const a1 = E(1) + 7n;
    const b1 = E(3) + 13n;
    const r = await ch.settle(ch.nodeA, [
      await ch.signed(ch.payerA, ch.nodeA, X, a1),
      await ch.signed(ch.payerB, ch.nodeA, X, b1),
    ]);
    expect(r.paid).toBe(a1 + b1);
    const sa = split(a1);
    const sb = split(b1);
    const accrued = sa.share + sb.share;
    expect(await ch.read.escrow.read.accrued([X])).toBe(accrued);
    const due = [5000n, 3000n, 2000n].map((w) => (accrued * w) / 10000n);
    for (const [i, c] of [ch.c1, ch.c2, ch.c3].entries()) {
      expect(await ch.read.escrow.read.claimable([X, c.account.address])).toBe(due[i]);
      await ch.wait(ch.as(c).escrow.write.claim([[X]]));
      expect(await ch.read.escrow.read.claimable([X, c.account.address])).toBe(0n);
    }
    const after = await balances();
    const delta = (k: keyof typeof who) => after[k] - before[k];
    expect(delta("payerA")).toBe(0n); // payers paid from escrowed deposits
    expect(await ch.deposit(ch.payerA, ch.nodeA)).toBe(E(1000) - a1);
    expect(await ch.deposit(ch.payerB, ch.nodeA)).toBe(E(1000) - b1);
    expect(delta("treasury")).toBe(sa.fee + sb.fee);
    expect(delta("node")).toBe(sa.node + sb.node);
    expect([delta("c1"), delta("c2"), delta("c3")]).toEqual(due);
    const dust = accrued - due[0] - due[1] - due[2];
    expect(dust).toBeGreaterThanOrEqual(0n);
    expect(dust).toBeLessThan(3n);
    expect(delta("escrow")).toBe(-(a1 + b1) + dust);
    // nothing created or lost: every wei that left the escrow arrived somewhere
    expect(delta("treasury") + delta("node") + delta("c1") + delta("c2") + delta("c3") + delta("escrow")).toBe(0n);
    expect(await ch.tokenBalance(escrow)).toBe(E(2000) - a1 - b1 + dust);
  });
});

describe("claim", () => {
  it("claims across listings, O(1) each; double claim and strangers get NothingToClaim", async () => {
    const c1 = ch.c1.account.address;
    await expectRevert(ch.as(ch.c1).escrow.write.claim([[X, Y]]), "NothingToClaim");
    await ch.settle(ch.nodeA, [
      await ch.signed(ch.payerA, ch.nodeA, X, E(100)),
      await ch.signed(ch.payerA, ch.nodeA, Y, E(50)),
    ]);
    const wantX = (split(E(100)).share * 5000n) / 10000n;
    const wantY = split(E(50)).share;
    expect(await ch.read.escrow.read.claimable([X, c1])).toBe(wantX);
    expect(await ch.read.escrow.read.claimable([Y, c1])).toBe(wantY);
    const { result } = await ch.as(ch.c1).escrow.simulate.claim([[X, Y, X]], { account: c1 });
    expect(result).toBe(wantX + wantY); // a repeated id counts once
    const before = await ch.tokenBalance(c1);
    await ch.wait(ch.as(ch.c1).escrow.write.claim([[X, Y, X]]));
    expect((await ch.tokenBalance(c1)) - before).toBe(wantX + wantY);
    expect(await ch.read.escrow.read.claimed([X, c1])).toBe(wantX);
    await expectRevert(ch.as(ch.c1).escrow.write.claim([[X, Y]]), "NothingToClaim");
    await expectRevert(ch.as(ch.stranger).escrow.write.claim([[X]]), "NothingToClaim");
    const events = await ch.read.escrow.getEvents.Claimed({ contributor: c1 }, { fromBlock: 0n });
    expect(events.map((e) => [e.args.listingId, e.args.amount])).toEqual([
      [X, wantX],
      [Y, wantY],
    ]);
    // more accrues later: only the new part is claimable
    await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, X, E(200))]);
    const total = ((split(E(100)).share + split(E(100)).share) * 5000n) / 10000n;
    expect(await ch.read.escrow.read.claimable([X, c1])).toBe(total - wantX);
  });

  it("a retired listing's pool stays claimable", async () => {
    await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, Y, E(10))]);
    await ch.wait(ch.as(ch.adapterOwner).adapterRegistry.write.retire([Y]));
    await ch.wait(ch.as(ch.c1).escrow.write.claim([[Y]]));
    expect(await ch.read.escrow.read.claimed([Y, ch.c1.account.address])).toBe(split(E(10)).share);
  });

  it("two listings of the same content pay their own contributors", async () => {
    const hash = contentHashOf("Y");
    const mine = await ch.registerListing(ch.stranger, "Y", [ch.c2.account.address], [10000]);
    expect(mine).toBe(listingIdOf(ch.stranger.account.address, hash));
    expect(mine).not.toBe(Y);
    await ch.settle(ch.nodeA, [
      await ch.signed(ch.payerA, ch.nodeA, Y, E(10)),
      await ch.signed(ch.payerA, ch.nodeA, mine, E(30)),
    ]);
    expect(await ch.read.escrow.read.claimable([Y, ch.c1.account.address])).toBe(split(E(10)).share);
    expect(await ch.read.escrow.read.claimable([mine, ch.c2.account.address])).toBe(split(E(30)).share);
    expect(await ch.read.escrow.read.claimable([Y, ch.c2.account.address])).toBe(0n);
  });
});

describe("parameters", () => {
  it("admin-only, bounded, evented; fees are scheduled one withdrawal delay ahead", async () => {
    const admin = ch.as(ch.deployer).escrow.write;
    const other = ch.as(ch.stranger).escrow.write;
    await expectRevert(other.scheduleFees([1, 1]), "AccessControlUnauthorizedAccount");
    await expectRevert(other.setTreasury([ch.stranger.account.address]), "AccessControlUnauthorizedAccount");
    await expectRevert(other.setWithdrawDelay([3600n]), "AccessControlUnauthorizedAccount");
    await expectRevert(other.setWithdrawWindow([3600n]), "AccessControlUnauthorizedAccount");
    await expectRevert(admin.scheduleFees([1001, 0]), "ProtocolFeeTooHigh", [1001n, 1000n]);
    await expectRevert(admin.scheduleFees([0, 5001]), "ContributorShareTooHigh", [5001n, 5000n]);
    await expectRevert(admin.setTreasury([zeroAddress]), "ZeroAddress");
    await expectRevert(admin.setWithdrawDelay([0n]), "DelayOutOfRange", [0n, 3600n, 30n * DAY]);
    await expectRevert(admin.setWithdrawDelay([3599n]), "DelayOutOfRange");
    await expectRevert(admin.setWithdrawDelay([31n * DAY]), "DelayOutOfRange", [31n * DAY, 3600n, 30n * DAY]);
    await expectRevert(admin.setWithdrawWindow([0n]), "WindowOutOfRange", [0n, 3600n, 30n * DAY]);
    await expectRevert(admin.setWithdrawWindow([31n * DAY]), "WindowOutOfRange");

    const r = await ch.wait(admin.scheduleFees([1000, 5000]));
    const t = (await ch.publicClient.getBlock({ blockNumber: r.blockNumber })).timestamp;
    expect(await ch.read.escrow.read.pendingFees()).toEqual([1000, 5000, t + DAY]);
    expect(await ch.read.escrow.read.protocolFeeBps()).toBe(500); // not yet
    await ch.wait(admin.setTreasury([ch.stranger.account.address]));
    await ch.wait(admin.setWithdrawDelay([3600n]));
    await ch.wait(admin.setWithdrawWindow([7200n]));
    expect(await ch.read.escrow.read.treasury()).toBe(ch.stranger.account.address);
    expect(await ch.read.escrow.read.withdrawDelay()).toBe(3600n);
    expect(await ch.read.escrow.read.withdrawWindow()).toBe(7200n);
    // the old fees apply until the change is due
    const s0 = await ch.tokenBalance(ch.stranger.account.address);
    expect((await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, X, E(10))])).paid).toBe(E(10));
    expect((await ch.tokenBalance(ch.stranger.account.address)) - s0).toBe(split(E(10)).fee);
    await ch.increaseTime(DAY);
    expect(await ch.read.escrow.read.protocolFeeBps()).toBe(1000);
    expect(await ch.read.escrow.read.contributorShareBps()).toBe(5000);
    expect(await ch.read.escrow.read.pendingFees()).toEqual([0, 0, 0n]);
    const s1 = await ch.tokenBalance(ch.stranger.account.address);
    expect((await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, X, E(20))])).paid).toBe(E(10));
    expect((await ch.tokenBalance(ch.stranger.account.address)) - s1).toBe(E(1));
    expect(await ch.read.escrow.read.accrued([X])).toBe(split(E(10)).share + E(5));
    // the next change is scheduled from the delay in force now (1 hour), replacing nothing pending
    const r2 = await ch.wait(admin.scheduleFees([0, 0]));
    const t2 = (await ch.publicClient.getBlock({ blockNumber: r2.blockNumber })).timestamp;
    expect(await ch.read.escrow.read.pendingFees()).toEqual([0, 0, t2 + 3600n]);
    expect(await ch.read.escrow.read.protocolFeeBps()).toBe(1000);
    const events = await ch.read.escrow.getEvents.FeesScheduled({ fromBlock: 0n });
    expect(events.map((e) => [e.args.protocolFeeBps, e.args.contributorShareBps])).toEqual([
      [500, 2000],
      [1000, 5000],
      [0, 0],
    ]);
    expect((await ch.read.escrow.getEvents.TreasurySet({ fromBlock: 0n })).length).toBe(2);
    expect((await ch.read.escrow.getEvents.WithdrawDelaySet({ fromBlock: 0n })).length).toBe(2);
    expect((await ch.read.escrow.getEvents.WithdrawWindowSet({ fromBlock: 0n })).length).toBe(2);
  });

  it("constructor rejects zero addresses, fees above the caps and delays out of range", async () => {
    const { OpenToken, NodeRegistry, AdapterRegistry } = ch.deployment.contracts;
    const me = ch.deployer.account.address;
    type Args = [Address, Address, Address, Address, Address, number, number, bigint, bigint];
    const ok: Args = [OpenToken, NodeRegistry, AdapterRegistry, me, me, 500, 2000, 3600n, 3600n];
    for (const i of [0, 1, 2, 3, 4]) {
      const args = [...ok] as Args;
      args[i] = zeroAddress;
      await expectRevert(ch.viem.deployContract("InferenceEscrow", args), "ZeroAddress");
    }
    const bad = (i: number, value: number | bigint): Args => {
      const args = [...ok] as Args;
      (args as unknown[])[i] = value;
      return args;
    };
    await expectRevert(ch.viem.deployContract("InferenceEscrow", bad(5, 1001)), "ProtocolFeeTooHigh");
    await expectRevert(ch.viem.deployContract("InferenceEscrow", bad(6, 5001)), "ContributorShareTooHigh");
    await expectRevert(ch.viem.deployContract("InferenceEscrow", bad(7, 0n)), "DelayOutOfRange");
    await expectRevert(ch.viem.deployContract("InferenceEscrow", bad(7, 30n * DAY + 1n)), "DelayOutOfRange");
    await expectRevert(ch.viem.deployContract("InferenceEscrow", bad(8, 3599n)), "WindowOutOfRange");
  });
});

describe("fee-on-transfer token", () => {
  it("deposit and stake credit what arrived; the escrow holds exactly what it owes", async () => {
    const me = ch.deployer.account.address;
    const token = await ch.viem.deployContract("FeeOnTransferToken", [me, E(1_000_000)]);
    const reg = await ch.viem.deployContract("NodeRegistry", [token.address, me, me, E(1), DAY]);
    const listings = await ch.viem.deployContract("AdapterRegistry", []);
    const esc = await ch.viem.deployContract("InferenceEscrow", [
      token.address,
      reg.address,
      listings.address,
      me,
      me,
      500,
      2000,
      DAY,
      DAY,
    ]);
    await ch.wait(token.write.approve([esc.address, E(1000)]));
    await ch.wait(token.write.approve([reg.address, E(1000)]));
    const { result: credited } = await esc.simulate.deposit([nA, E(100)]);
    expect(credited).toBe(E(99));
    const receipt = await ch.wait(esc.write.deposit([nA, E(100)]));
    expect(await esc.read.balanceOf([me, nA])).toBe(E(99));
    expect(await token.read.balanceOf([esc.address])).toBe(E(99));
    const [ev] = parseEventLogs({ abi: inferenceEscrowAbi, logs: receipt.logs, eventName: "Deposited" });
    expect(ev.args).toMatchObject({ amount: E(99), balance: E(99) });
    await ch.wait(reg.write.stake([E(10), peerIdOf(me), ""]));
    expect(await reg.read.stakeOf([me])).toBe(E(9.9));
    expect(await token.read.balanceOf([reg.address])).toBe(E(9.9));
    // everything credited can leave again
    await ch.wait(esc.write.requestWithdraw([nA, E(99)]));
    await ch.wait(reg.write.requestUnstake([E(9.9)]));
    await ch.increaseTime(DAY);
    await ch.wait(esc.write.withdraw([nA]));
    await ch.wait(reg.write.withdrawStake());
    expect(await token.read.balanceOf([esc.address])).toBe(0n);
    expect(await token.read.balanceOf([reg.address])).toBe(0n);
  });
});

describe("reentrancy through a malicious token hook", () => {
  it("every token-moving entry point refuses reentry", async () => {
    const me = ch.deployer.account.address;
    const token = await ch.viem.deployContract("ReentrantToken", [me, E(1_000_000)]);
    const reg = await ch.viem.deployContract("NodeRegistry", [token.address, me, me, E(1), 0n]);
    const listings = await ch.viem.deployContract("AdapterRegistry", []);
    const esc = await ch.viem.deployContract("InferenceEscrow", [
      token.address,
      reg.address,
      listings.address,
      me,
      me,
      500,
      2000,
      3600n,
      DAY,
    ]);
    const call = (
      abi: typeof inferenceEscrowAbi | typeof nodeRegistryAbi,
      functionName: string,
      args: unknown[] = [],
    ) => encodeFunctionData({ abi, functionName, args } as Parameters<typeof encodeFunctionData>[0]);
    await ch.wait(token.write.approve([esc.address, E(1000)]));
    await ch.wait(token.write.approve([reg.address, E(1000)]));

    // deposit -> hook -> withdraw
    await ch.wait(token.write.arm([esc.address, call(inferenceEscrowAbi, "withdraw", [me])]));
    await expectRevert(esc.write.deposit([me, E(10)]), "ReentrancyGuardReentrantCall");
    await ch.wait(token.write.arm([zeroAddress, "0x"]));
    await ch.wait(esc.write.deposit([me, E(100)]));

    // stake -> hook -> withdrawStake
    await ch.wait(token.write.arm([reg.address, call(nodeRegistryAbi, "withdrawStake")]));
    await expectRevert(reg.write.stake([E(10), peerIdOf(me), ""]), "ReentrancyGuardReentrantCall");
    await ch.wait(token.write.arm([zeroAddress, "0x"]));
    await ch.wait(reg.write.stake([E(10), peerIdOf(me), ""]));

    // settle -> hook -> settle again with the same voucher
    const hash = contentHashOf("reentrant");
    await ch.wait(listings.write.register([hash, hash, 4, 100n, "u", [me], [10000]]));
    const id = listingIdOf(me, hash);
    const voucher: Voucher = { payer: me, node: me, listingId: id, cumulativeAmount: E(10) };
    const sig = await signVoucher(ch.deployer, voucher, { chainId: ch.chainId, verifyingContract: esc.address });
    await ch.wait(token.write.arm([esc.address, call(inferenceEscrowAbi, "settle", [[voucher], [sig]])]));
    await expectRevert(esc.write.settle([[voucher], [sig]]), "ReentrancyGuardReentrantCall");
    await ch.wait(token.write.arm([zeroAddress, "0x"]));
    await ch.wait(esc.write.settle([[voucher], [sig]]));
    expect(await esc.read.settled([me, me, id])).toBe(E(10));

    // claim -> hook -> claim
    await ch.wait(token.write.arm([esc.address, call(inferenceEscrowAbi, "claim", [[id]])]));
    await expectRevert(esc.write.claim([[id]]), "ReentrancyGuardReentrantCall");
    // withdraw -> hook -> withdraw
    await ch.wait(esc.write.requestWithdraw([me, E(50)]));
    await ch.increaseTime(3600);
    await ch.wait(token.write.arm([esc.address, call(inferenceEscrowAbi, "withdraw", [me])]));
    await expectRevert(esc.write.withdraw([me]), "ReentrancyGuardReentrantCall");
    await ch.wait(token.write.arm([zeroAddress, "0x"]));
    await ch.wait(esc.write.withdraw([me]));
    expect(await esc.read.balanceOf([me, me])).toBe(E(40));
  });
});
