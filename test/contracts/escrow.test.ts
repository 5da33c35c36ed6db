// InferenceEscrow: deposits, withdrawals, settle (every skip reason), claims, parameters, the whole flow to the wei,
// and the attacks the issue lists. Vouchers are signed with node/chain/voucher.ts.
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { encodeFunctionData, keccak256, parseEventLogs, parseSignature, toHex, zeroAddress, type Address, type Hex } from "viem";
import { inferenceEscrowAbi, nodeRegistryAbi } from "../../node/chain/abi.ts";
import { SkipReason, signVoucher, type Voucher } from "../../node/chain/voucher.ts";
import { adapterIdOf, createChain, E, expectRevert, peerIdOf, type Chain } from "./fixture.ts";

const FEE = 500n;
const SHARE = 2000n;
const split = (amount: bigint) => {
  const fee = (amount * FEE) / 10000n;
  const share = (amount * SHARE) / 10000n;
  return { fee, share, node: amount - fee - share };
};

let ch: Chain;
let snap: Hex;
let X: Hex; // adapter with contributors c1 50%, c2 30%, c3 20%
let Y: Hex; // adapter with c1 100%
let escrow: Address;
beforeAll(async () => {
  ch = await createChain();
  escrow = ch.deployment.contracts.InferenceEscrow;
  await ch.stakeNode(ch.nodeA, E(100));
  await ch.stakeNode(ch.nodeB, E(100));
  X = await ch.registerAdapter(
    ch.adapterOwner,
    "X",
    [ch.c1.account.address, ch.c2.account.address, ch.c3.account.address],
    [5000, 3000, 2000],
  );
  Y = await ch.registerAdapter(ch.adapterOwner, "Y", [ch.c1.account.address], [10000]);
  await ch.depositFor(ch.payerA, E(1000));
  await ch.depositFor(ch.payerB, E(1000));
});
beforeEach(async () => {
  snap = await ch.snapshot();
});
afterEach(async () => {
  await ch.revertTo(snap);
});

describe("deposits and withdrawals", () => {
  it("deposit credits the balance and emits", async () => {
    await ch.depositFor(ch.payerC, E(5));
    expect(await ch.read.escrow.read.balanceOf([ch.payerC.account.address])).toBe(E(5));
    const [ev] = await ch.read.escrow.getEvents.Deposited({ payer: ch.payerC.account.address }, { fromBlock: 0n });
    expect([ev.args.amount, ev.args.balance]).toEqual([E(5), E(5)]);
    await expectRevert(ch.as(ch.payerC).escrow.write.deposit([0n]), "ZeroAmount");
    await expectRevert(ch.as(ch.payerC).escrow.write.deposit([E(1)]), "ERC20InsufficientAllowance");
  });

  async function permit(owner: Chain["payerC"], value: bigint, deadline: bigint) {
    const nonce = await ch.read.token.read.nonces([owner.account.address]);
    const sig = await owner.signTypedData({
      domain: { name: "OpenLoRA Token", version: "1", chainId: ch.chainId, verifyingContract: ch.deployment.contracts.OpenToken },
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
    await ch.wait(ch.as(c).escrow.write.depositWithPermit([E(4), deadline, p.v, p.r, p.s]));
    expect(await ch.read.escrow.read.balanceOf([c.account.address])).toBe(E(4));
    // someone submits the permit first: the deposit still goes through on the allowance it set
    const q = await permit(c, E(6), deadline);
    await ch.wait(
      ch.as(ch.stranger).token.write.permit([c.account.address, escrow, E(6), deadline, q.v, q.r, q.s]),
    );
    await ch.wait(ch.as(c).escrow.write.depositWithPermit([E(6), deadline, q.v, q.r, q.s]));
    expect(await ch.read.escrow.read.balanceOf([c.account.address])).toBe(E(10));
    // a bad permit and no allowance: the transfer fails
    await expectRevert(
      ch.as(c).escrow.write.depositWithPermit([E(1), deadline, q.v, q.r, q.s]),
      "ERC20InsufficientAllowance",
    );
  });

  it("withdraw waits for the delay; reverts name the problem", async () => {
    const a = ch.payerA.account.address;
    const w = ch.as(ch.payerA).escrow.write;
    await expectRevert(w.requestWithdraw([0n]), "ZeroAmount");
    await expectRevert(w.requestWithdraw([E(1001)]), "InsufficientBalance", [E(1001), E(1000)]);
    await expectRevert(w.withdraw(), "NoWithdrawalPending");
    await ch.wait(w.requestWithdraw([E(300)]));
    const req = await ch.read.escrow.read.withdrawalOf([a]);
    expect(req.amount).toBe(E(300));
    await expectRevert(w.withdraw(), "WithdrawalNotReady", [req.availableAt]);
    await ch.increaseTime(86400);
    const before = await ch.tokenBalance(a);
    await ch.wait(w.withdraw());
    expect((await ch.tokenBalance(a)) - before).toBe(E(300));
    expect(await ch.read.escrow.read.balanceOf([a])).toBe(E(700));
    expect((await ch.read.escrow.read.withdrawalOf([a])).amount).toBe(0n);
    await expectRevert(w.withdraw(), "NoWithdrawalPending");
    const [ev] = await ch.read.escrow.getEvents.Withdrawn({ payer: a }, { fromBlock: 0n });
    expect(ev.args.amount).toBe(E(300));
  });

  it("attack: withdrawing before the delay to dodge a pending settlement fails; the node settles first", async () => {
    const a = ch.payerA.account.address;
    const v = await ch.signed(ch.payerA, ch.nodeA, X, E(600));
    await ch.wait(ch.as(ch.payerA).escrow.write.requestWithdraw([E(1000)]));
    await expectRevert(ch.as(ch.payerA).escrow.write.withdraw(), "WithdrawalNotReady");
    const r = await ch.settle(ch.nodeA, [v]); // within the delay, the funds are still there
    expect(r.paid).toBe(E(600));
    await ch.increaseTime(86400);
    const before = await ch.tokenBalance(a);
    await ch.wait(ch.as(ch.payerA).escrow.write.withdraw());
    expect((await ch.tokenBalance(a)) - before).toBe(E(400)); // min(requested, what is left)
    expect(await ch.read.escrow.read.balanceOf([a])).toBe(0n);
  });
});

describe("settle", () => {
  it("pays the growth: fee to treasury, share to the pool, rest to the node", async () => {
    const t0 = await ch.tokenBalance(ch.treasury.account.address);
    const n0 = await ch.tokenBalance(ch.nodeA.account.address);
    const r1 = await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, X, E(10))]);
    expect(r1.paid).toBe(E(10));
    expect(r1.settled).toHaveLength(1);
    expect(r1.settled[0]).toMatchObject({ payer: ch.payerA.account.address, adapterId: X, amount: E(10) });
    const r2 = await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, X, E(25))]);
    expect(r2.paid).toBe(E(15)); // only the growth
    const s = split(E(10));
    const s2 = split(E(15));
    expect((await ch.tokenBalance(ch.treasury.account.address)) - t0).toBe(s.fee + s2.fee);
    expect((await ch.tokenBalance(ch.nodeA.account.address)) - n0).toBe(s.node + s2.node);
    expect(await ch.read.escrow.read.accrued([X])).toBe(s.share + s2.share);
    expect(await ch.read.escrow.read.settled([ch.payerA.account.address, ch.nodeA.account.address, X])).toBe(E(25));
    expect(await ch.read.escrow.read.balanceOf([ch.payerA.account.address])).toBe(E(975));
    const [batch] = await ch.read.escrow.getEvents.BatchSettled({ node: ch.nodeA.account.address }, { fromBlock: r1.receipt.blockNumber, toBlock: r1.receipt.blockNumber });
    expect(batch.args).toMatchObject({ count: 1n, paid: E(10), protocolFee: s.fee, contributorShare: s.share });
  });

  it("reverts on mismatched lengths and for a caller that is not an active node", async () => {
    const v = await ch.signed(ch.payerA, ch.stranger, X, E(1));
    await expectRevert(ch.as(ch.nodeA).escrow.write.settle([[v.voucher], []]), "LengthMismatch");
    await expectRevert(ch.as(ch.stranger).escrow.write.settle([[v.voucher], [v.signature]]), "NotActiveNode", [
      ch.stranger.account.address,
    ]);
  });

  it("attack: settle by a slashed node or a node that unstaked", async () => {
    const v = await ch.signed(ch.payerA, ch.nodeA, X, E(1));
    await ch.wait(ch.as(ch.deployer).nodeRegistry.write.slash([ch.nodeA.account.address, E(1), keccak256(toHex("fraud"))]));
    await expectRevert(ch.as(ch.nodeA).escrow.write.settle([[v.voucher], [v.signature]]), "NotActiveNode");
    const w = await ch.signed(ch.payerA, ch.nodeB, X, E(1));
    await ch.wait(ch.as(ch.nodeB).nodeRegistry.write.requestUnstake([E(100)]));
    await expectRevert(ch.as(ch.nodeB).escrow.write.settle([[w.voucher], [w.signature]]), "NotActiveNode");
  });

  it("attack: replaying a voucher, in a later batch or twice in one batch, pays once", async () => {
    const v = await ch.signed(ch.payerA, ch.nodeA, X, E(7));
    const r1 = await ch.settle(ch.nodeA, [v, v]);
    expect(r1.paid).toBe(E(7));
    expect(r1.skipped).toEqual([{ payer: ch.payerA.account.address, adapterId: X, reason: "NotGrowing" }]);
    const r2 = await ch.settle(ch.nodeA, [v]);
    expect(r2.paid).toBe(0n);
    expect(r2.skipped.map((s) => s.reason)).toEqual(["NotGrowing"]);
    // a lower cumulative amount signed later is stale too
    const lower = await ch.signed(ch.payerA, ch.nodeA, X, E(5));
    expect((await ch.settle(ch.nodeA, [lower])).skipped.map((s) => s.reason)).toEqual(["NotGrowing"]);
    expect(await ch.read.escrow.read.balanceOf([ch.payerA.account.address])).toBe(E(993));
  });

  it("attack: a voucher signed for another chain id or another escrow is void", async () => {
    const otherChain = await ch.signed(ch.payerA, ch.nodeA, X, E(1), { chainId: 1, verifyingContract: escrow });
    const otherEscrow = await ch.signed(ch.payerA, ch.nodeA, X, E(1), {
      chainId: ch.chainId,
      verifyingContract: ch.deployment.contracts.NodeRegistry,
    });
    const r = await ch.settle(ch.nodeA, [otherChain, otherEscrow]);
    expect(r.paid).toBe(0n);
    expect(r.skipped.map((s) => s.reason)).toEqual(["BadSignature", "BadSignature"]);
    // a second, real escrow on the same chain: a voucher for the first does not settle there
    const second = await ch.viem.deployContract("InferenceEscrow", [
      ch.deployment.contracts.OpenToken,
      ch.deployment.contracts.NodeRegistry,
      ch.deployment.contracts.AdapterRegistry,
      ch.deployer.account.address,
      ch.treasury.account.address,
      500,
      2000,
      86400n,
    ]);
    await ch.approve(ch.payerA, second.address, E(10));
    await ch.fund(ch.payerA.account.address, E(10));
    await ch.wait(second.write.deposit([E(10)], { account: ch.payerA.account }));
    const mine = await ch.signed(ch.payerA, ch.nodeA, X, E(1));
    const hash = await second.write.settle([[mine.voucher], [mine.signature]], { account: ch.nodeA.account });
    const receipt = await ch.wait(hash);
    const skipped = parseEventLogs({ abi: inferenceEscrowAbi, logs: receipt.logs, eventName: "VoucherSkipped" });
    expect(skipped.map((s) => s.args.reason)).toEqual([SkipReason.BadSignature]);
    expect(await second.read.balanceOf([ch.payerA.account.address])).toBe(E(10));
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
    const r = await ch.settle(ch.nodeA, [tampered, forged, short, malleable]);
    expect(r.paid).toBe(0n);
    expect(r.skipped.map((s) => s.reason)).toEqual(["BadSignature", "BadSignature", "BadSignature", "BadSignature"]);
    expect((await ch.settle(ch.nodeA, [v])).paid).toBe(E(2));
  });

  it("skips unknown, retired and zero adapters, in any batch position", async () => {
    const unknown = await ch.signed(ch.payerA, ch.nodeA, adapterIdOf("unknown"), E(1));
    const zero = await ch.signed(ch.payerA, ch.nodeA, `0x${"00".repeat(32)}`, E(1));
    const good = await ch.signed(ch.payerA, ch.nodeA, X, E(1));
    const r = await ch.settle(ch.nodeA, [zero, good, zero, unknown]);
    expect(r.paid).toBe(E(1));
    expect(r.skipped.map((s) => s.reason)).toEqual(["AdapterNotLive", "AdapterNotLive", "AdapterNotLive"]);
    await ch.wait(ch.as(ch.adapterOwner).adapterRegistry.write.retire([X]));
    const later = await ch.signed(ch.payerA, ch.nodeA, X, E(2));
    expect((await ch.settle(ch.nodeA, [later])).skipped.map((s) => s.reason)).toEqual(["AdapterNotLive"]);
  });

  it("skips a payer short of funds without advancing the channel", async () => {
    await ch.depositFor(ch.payerC, E(1));
    const v = await ch.signed(ch.payerC, ch.nodeA, Y, E(2));
    const r = await ch.settle(ch.nodeA, [v]);
    expect(r.skipped.map((s) => s.reason)).toEqual(["InsufficientFunds"]);
    expect(await ch.read.escrow.read.settled([ch.payerC.account.address, ch.nodeA.account.address, Y])).toBe(0n);
    await ch.depositFor(ch.payerC, E(1));
    expect((await ch.settle(ch.nodeA, [v])).paid).toBe(E(2));
    expect(await ch.read.escrow.read.balanceOf([ch.payerC.account.address])).toBe(0n);
  });

  it("an empty batch pays nothing", async () => {
    const r = await ch.settle(ch.nodeA, []);
    expect(r.paid).toBe(0n);
  });

  it("whole flow: 3 contributors, 2 payers in one batch, every contributor claims; balances add up to the wei", async () => {
    const who = {
      payerA: ch.payerA.account.address,
      payerB: ch.payerB.account.address,
      node: ch.nodeA.account.address,
      treasury: ch.treasury.account.address,
      c1: ch.c1.account.address,
      c2: ch.c2.account.address,
      c3: ch.c3.account.address,
      escrow,
    };
    const before = Object.fromEntries(
      await Promise.all(Object.entries(who).map(async ([k, a]) => [k, await ch.tokenBalance(a)] as const)),
    ) as Record<keyof typeof who, bigint>;
    // awkward amounts so every split rounds
    const a1 = E(1) + 7n;
    const b1 = E(3) + 13n;
    const r = await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, X, a1), await ch.signed(ch.payerB, ch.nodeA, X, b1)]);
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
    const after = Object.fromEntries(
      await Promise.all(Object.entries(who).map(async ([k, a]) => [k, await ch.tokenBalance(a)] as const)),
    ) as Record<keyof typeof who, bigint>;
    const delta = (k: keyof typeof who) => after[k] - before[k];
    expect(delta("payerA")).toBe(0n); // payers paid from escrowed balances
    expect(await ch.read.escrow.read.balanceOf([who.payerA])).toBe(E(1000) - a1);
    expect(await ch.read.escrow.read.balanceOf([who.payerB])).toBe(E(1000) - b1);
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
  it("claims across adapters, O(1) each; double claim and strangers get NothingToClaim", async () => {
    const c1 = ch.c1.account.address;
    await expectRevert(ch.as(ch.c1).escrow.write.claim([[X, Y]]), "NothingToClaim");
    await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, X, E(100)), await ch.signed(ch.payerA, ch.nodeA, Y, E(50))]);
    const wantX = (split(E(100)).share * 5000n) / 10000n;
    const wantY = split(E(50)).share;
    expect(await ch.read.escrow.read.claimable([X, c1])).toBe(wantX);
    expect(await ch.read.escrow.read.claimable([Y, c1])).toBe(wantY);
    const { result } = await ch.as(ch.c1).escrow.simulate.claim([[X, Y, X]], { account: ch.c1.account.address });
    expect(result).toBe(wantX + wantY); // a repeated id counts once
    const before = await ch.tokenBalance(c1);
    await ch.wait(ch.as(ch.c1).escrow.write.claim([[X, Y, X]]));
    expect((await ch.tokenBalance(c1)) - before).toBe(wantX + wantY);
    expect(await ch.read.escrow.read.claimed([X, c1])).toBe(wantX);
    await expectRevert(ch.as(ch.c1).escrow.write.claim([[X, Y]]), "NothingToClaim");
    await expectRevert(ch.as(ch.stranger).escrow.write.claim([[X]]), "NothingToClaim");
    const events = await ch.read.escrow.getEvents.Claimed({ contributor: c1 }, { fromBlock: 0n });
    expect(events.map((e) => [e.args.adapterId, e.args.amount])).toEqual([
      [X, wantX],
      [Y, wantY],
    ]);
    // more accrues later: only the new part is claimable
    await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, X, E(200))]);
    const total = ((split(E(100)).share + split(E(100)).share) * 5000n) / 10000n;
    expect(await ch.read.escrow.read.claimable([X, c1])).toBe(total - wantX);
  });

  it("a retired adapter's pool stays claimable", async () => {
    await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, Y, E(10))]);
    await ch.wait(ch.as(ch.adapterOwner).adapterRegistry.write.retire([Y]));
    await ch.wait(ch.as(ch.c1).escrow.write.claim([[Y]]));
    expect(await ch.read.escrow.read.claimed([Y, ch.c1.account.address])).toBe(split(E(10)).share);
  });
});

describe("parameters", () => {
  it("admin-only, bounded, evented", async () => {
    const admin = ch.as(ch.deployer).escrow.write;
    const other = ch.as(ch.stranger).escrow.write;
    await expectRevert(other.setFees([1, 1]), "AccessControlUnauthorizedAccount");
    await expectRevert(other.setTreasury([ch.stranger.account.address]), "AccessControlUnauthorizedAccount");
    await expectRevert(other.setWithdrawDelay([1n]), "AccessControlUnauthorizedAccount");
    await expectRevert(admin.setFees([5001, 5000]), "FeesTooHigh", [5001n, 5000n]);
    await expectRevert(admin.setFees([65535, 65535]), "FeesTooHigh");
    await expectRevert(admin.setTreasury([zeroAddress]), "ZeroAddress");
    await expectRevert(admin.setWithdrawDelay([31n * 86400n]), "DelayTooLong", [31n * 86400n, 30n * 86400n]);
    await ch.wait(admin.setFees([5000, 5000]));
    await ch.wait(admin.setTreasury([ch.stranger.account.address]));
    await ch.wait(admin.setWithdrawDelay([0n]));
    expect(await ch.read.escrow.read.protocolFeeBps()).toBe(5000);
    expect(await ch.read.escrow.read.contributorShareBps()).toBe(5000);
    expect(await ch.read.escrow.read.treasury()).toBe(ch.stranger.account.address);
    expect(await ch.read.escrow.read.withdrawDelay()).toBe(0n);
    expect((await ch.read.escrow.getEvents.FeesSet({ fromBlock: 0n })).length).toBe(2);
    expect((await ch.read.escrow.getEvents.TreasurySet({ fromBlock: 0n })).length).toBe(2);
    expect((await ch.read.escrow.getEvents.WithdrawDelaySet({ fromBlock: 0n })).length).toBe(2);
    // at 100% fees the node gets nothing and nothing breaks
    const s0 = await ch.tokenBalance(ch.stranger.account.address);
    const r = await ch.settle(ch.nodeA, [await ch.signed(ch.payerA, ch.nodeA, X, E(10))]);
    expect(r.paid).toBe(E(10));
    expect((await ch.tokenBalance(ch.stranger.account.address)) - s0).toBe(E(5));
    expect(await ch.read.escrow.read.accrued([X])).toBe(E(5));
  });

  it("constructor rejects zero addresses and fees above 100%", async () => {
    const { OpenToken, NodeRegistry, AdapterRegistry } = ch.deployment.contracts;
    const me = ch.deployer.account.address;
    const ok = [OpenToken, NodeRegistry, AdapterRegistry, me, me, 500, 2000, 0n] as const;
    for (const i of [0, 1, 2, 3, 4]) {
      const args = [...ok] as [Address, Address, Address, Address, Address, number, number, bigint];
      args[i] = zeroAddress;
      await expectRevert(ch.viem.deployContract("InferenceEscrow", args), "ZeroAddress");
    }
    await expectRevert(ch.viem.deployContract("InferenceEscrow", [OpenToken, NodeRegistry, AdapterRegistry, me, me, 9000, 1001, 0n]), "FeesTooHigh");
    await expectRevert(ch.viem.deployContract("InferenceEscrow", [OpenToken, NodeRegistry, AdapterRegistry, me, me, 0, 0, 30n * 86400n + 1n]), "DelayTooLong");
  });
});

describe("reentrancy through a malicious token hook", () => {
  it("every token-moving entry point refuses reentry", async () => {
    const me = ch.deployer.account.address;
    const token = await ch.viem.deployContract("ReentrantToken", [me, E(1_000_000)]);
    const reg = await ch.viem.deployContract("NodeRegistry", [token.address, me, me, E(1), 0n]);
    const adapters = await ch.viem.deployContract("AdapterRegistry", []);
    const esc = await ch.viem.deployContract("InferenceEscrow", [token.address, reg.address, adapters.address, me, me, 500, 2000, 0n]);
    const call = (abi: typeof inferenceEscrowAbi | typeof nodeRegistryAbi, functionName: string, args: unknown[] = []) =>
      encodeFunctionData({ abi, functionName, args } as Parameters<typeof encodeFunctionData>[0]);
    await ch.wait(token.write.approve([esc.address, E(1000)]));
    await ch.wait(token.write.approve([reg.address, E(1000)]));

    // deposit -> hook -> withdraw
    await ch.wait(token.write.arm([esc.address, call(inferenceEscrowAbi, "withdraw")]));
    await expectRevert(esc.write.deposit([E(10)]), "ReentrancyGuardReentrantCall");
    await ch.wait(token.write.arm([zeroAddress, "0x"]));
    await ch.wait(esc.write.deposit([E(100)]));

    // stake -> hook -> withdrawStake
    await ch.wait(token.write.arm([reg.address, call(nodeRegistryAbi, "withdrawStake")]));
    await expectRevert(reg.write.stake([E(10), peerIdOf(me), ""]), "ReentrancyGuardReentrantCall");
    await ch.wait(token.write.arm([zeroAddress, "0x"]));
    await ch.wait(reg.write.stake([E(10), peerIdOf(me), ""]));

    // settle -> hook -> settle again with the same voucher
    const id = adapterIdOf("reentrant");
    await ch.wait(adapters.write.register([id, id, 4, "u", [me], [10000]]));
    const voucher: Voucher = { payer: me, node: me, adapterId: id, cumulativeAmount: E(10) };
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
    await ch.wait(esc.write.requestWithdraw([E(50)]));
    await ch.wait(token.write.arm([esc.address, call(inferenceEscrowAbi, "withdraw")]));
    await expectRevert(esc.write.withdraw(), "ReentrancyGuardReentrantCall");
    await ch.wait(token.write.arm([zeroAddress, "0x"]));
    await ch.wait(esc.write.withdraw());
    expect(await esc.read.balanceOf([me])).toBe(E(40));
  });
});
