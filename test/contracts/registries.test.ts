// OpenToken, NodeRegistry and AdapterRegistry: each function's happy path and each revert, by custom error.
import { beforeAll, beforeEach, afterEach, describe, expect, it } from "vitest";
import { encodeAbiParameters, keccak256, toHex, zeroAddress, zeroHash, type Hex } from "viem";
import { contentHashOf, createChain, E, expectRevert, LISTING_SIZE, peerIdOf, type Chain } from "./fixture.ts";

let ch: Chain;
let snap: Hex;
beforeAll(async () => {
  ch = await createChain();
});
beforeEach(async () => {
  snap = await ch.snapshot();
});
afterEach(async () => {
  await ch.revertTo(snap);
});

describe("OpenToken", () => {
  it("mints the supply to the holder and has permit", async () => {
    expect(await ch.read.token.read.totalSupply()).toBe(E(1_000_000));
    expect(await ch.read.token.read.balanceOf([ch.deployer.account.address])).toBe(E(1_000_000));
    expect(await ch.read.token.read.symbol()).toBe("OPEN");
    expect(await ch.read.token.read.decimals()).toBe(18);
    expect(await ch.read.token.read.nonces([ch.payerA.account.address])).toBe(0n);
  });
});

describe("NodeRegistry", () => {
  const SLASHER = keccak256(toHex("SLASHER_ROLE"));

  it("stake binds peer id and endpoint and activates at minStake", async () => {
    const a = ch.nodeA.account.address;
    await ch.fund(a, E(150));
    await ch.approve(ch.nodeA, ch.deployment.contracts.NodeRegistry, E(150));
    expect(await ch.read.nodeRegistry.read.isActive([a])).toBe(false);
    const r = await ch.wait(ch.as(ch.nodeA).nodeRegistry.write.stake([E(100), peerIdOf(a), "https://a/api"]));
    expect(r.logs.length).toBeGreaterThan(0);
    expect(await ch.read.nodeRegistry.read.isActive([a])).toBe(true);
    expect(await ch.read.nodeRegistry.read.stakeOf([a])).toBe(E(100));
    // topping up with zero only updates metadata
    await ch.wait(ch.as(ch.nodeA).nodeRegistry.write.stake([0n, "0x1234", "tcp://b"]));
    const info = await ch.read.nodeRegistry.read.nodeOf([a]);
    expect(info.peerId).toBe("0x1234");
    expect(info.endpoint).toBe("tcp://b");
    expect(info.stake).toBe(E(100));
    expect(await ch.tokenBalance(ch.deployment.contracts.NodeRegistry)).toBe(E(100));
    const events = await ch.read.nodeRegistry.getEvents.Staked({ operator: a }, { fromBlock: 0n });
    expect(events.map((e) => e.args.totalStake)).toEqual([E(100), E(100)]);
  });

  it("stake reverts: empty peer id, too long, below min stake, no allowance", async () => {
    const w = ch.as(ch.nodeA).nodeRegistry.write;
    await expectRevert(w.stake([E(100), "0x", "x"]), "EmptyPeerId");
    await expectRevert(w.stake([E(100), toHex(new Uint8Array(129)), "x"]), "PeerIdTooLong", [129n]);
    await expectRevert(w.stake([E(100), "0x12", "x".repeat(257)]), "EndpointTooLong", [257n]);
    await expectRevert(w.stake([E(99), "0x12", "x"]), "BelowMinStake", [E(99), E(100)]);
    await expectRevert(w.stake([E(100), "0x12", "x"]), "ERC20InsufficientAllowance");
  });

  it("requestUnstake, then withdrawStake after the unbonding period", async () => {
    const a = ch.nodeA.account.address;
    await ch.stakeNode(ch.nodeA, E(150));
    const w = ch.as(ch.nodeA).nodeRegistry.write;
    await expectRevert(w.requestUnstake([0n]), "ZeroAmount");
    await expectRevert(w.requestUnstake([E(151)]), "InsufficientStake", [E(151), E(150)]);
    await expectRevert(w.withdrawStake(), "NothingToWithdraw");
    await ch.wait(w.requestUnstake([E(50)]));
    expect(await ch.read.nodeRegistry.read.isActive([a])).toBe(true); // 100 left, still >= minStake
    await ch.wait(w.requestUnstake([E(1)]));
    expect(await ch.read.nodeRegistry.read.isActive([a])).toBe(false); // 99 < minStake
    const info = await ch.read.nodeRegistry.read.nodeOf([a]);
    expect(info.stake).toBe(E(99));
    expect(info.unbonding).toBe(E(51));
    await expectRevert(w.withdrawStake(), "StillUnbonding", [info.unbondingEnd]);
    await ch.increaseTime(7 * 86400);
    const before = await ch.tokenBalance(a);
    await ch.wait(w.withdrawStake());
    expect((await ch.tokenBalance(a)) - before).toBe(E(51));
    expect((await ch.read.nodeRegistry.read.nodeOf([a])).unbonding).toBe(0n);
    await expectRevert(w.withdrawStake(), "NothingToWithdraw");
  });

  it("unstaking everything deactivates at once", async () => {
    await ch.stakeNode(ch.nodeA, E(100));
    await ch.wait(ch.as(ch.nodeA).nodeRegistry.write.requestUnstake([E(100)]));
    expect(await ch.read.nodeRegistry.read.isActive([ch.nodeA.account.address])).toBe(false);
  });

  it("slash takes bonded then unbonding stake to the treasury; only SLASHER_ROLE", async () => {
    const a = ch.nodeA.account.address;
    await ch.stakeNode(ch.nodeA, E(200));
    await ch.wait(ch.as(ch.nodeA).nodeRegistry.write.requestUnstake([E(80)]));
    const ev = keccak256(toHex("evidence"));
    await expectRevert(ch.as(ch.stranger).nodeRegistry.write.slash([a, E(1), ev]), "AccessControlUnauthorizedAccount", [
      ch.stranger.account.address,
      SLASHER,
    ]);
    const s = ch.as(ch.deployer).nodeRegistry.write;
    await expectRevert(s.slash([a, 0n, ev]), "ZeroAmount");
    await expectRevert(s.slash([ch.nodeB.account.address, E(1), ev]), "NotStaked", [ch.nodeB.account.address]);
    const t0 = await ch.tokenBalance(ch.treasury.account.address);
    await ch.wait(s.slash([a, E(150), ev])); // 120 bonded + 30 unbonding
    let info = await ch.read.nodeRegistry.read.nodeOf([a]);
    expect([info.stake, info.unbonding]).toEqual([0n, E(50)]);
    expect(await ch.read.nodeRegistry.read.isActive([a])).toBe(false);
    await ch.wait(s.slash([a, E(1000), ev])); // capped at what is left
    info = await ch.read.nodeRegistry.read.nodeOf([a]);
    expect([info.stake, info.unbonding]).toEqual([0n, 0n]);
    expect((await ch.tokenBalance(ch.treasury.account.address)) - t0).toBe(E(200));
    const logs = await ch.read.nodeRegistry.getEvents.Slashed({ operator: a }, { fromBlock: 0n });
    expect(logs.map((l) => [l.args.amount, l.args.evidence])).toEqual([
      [E(150), ev],
      [E(50), ev],
    ]);
  });

  it("admin setters are bounded, emit, and are admin-only", async () => {
    const admin = ch.as(ch.deployer).nodeRegistry.write;
    const other = ch.as(ch.stranger).nodeRegistry.write;
    await expectRevert(other.setMinStake([1n]), "AccessControlUnauthorizedAccount");
    await expectRevert(other.setUnbondingPeriod([1n]), "AccessControlUnauthorizedAccount");
    await expectRevert(other.setTreasury([ch.stranger.account.address]), "AccessControlUnauthorizedAccount");
    await expectRevert(admin.setMinStake([0n]), "ZeroAmount");
    await expectRevert(admin.setUnbondingPeriod([366n * 86400n]), "PeriodTooLong", [366n * 86400n, 365n * 86400n]);
    await expectRevert(admin.setTreasury([zeroAddress]), "ZeroAddress");
    await ch.wait(admin.setMinStake([E(500)]));
    await ch.wait(admin.setUnbondingPeriod([3600n]));
    await ch.wait(admin.setTreasury([ch.stranger.account.address]));
    expect(await ch.read.nodeRegistry.read.minStake()).toBe(E(500));
    expect(await ch.read.nodeRegistry.read.unbondingPeriod()).toBe(3600n);
    expect(await ch.read.nodeRegistry.read.treasury()).toBe(ch.stranger.account.address);
    expect((await ch.read.nodeRegistry.getEvents.MinStakeSet({ fromBlock: 0n })).length).toBe(2);
    expect((await ch.read.nodeRegistry.getEvents.UnbondingPeriodSet({ fromBlock: 0n })).length).toBe(2);
    expect((await ch.read.nodeRegistry.getEvents.TreasurySet({ fromBlock: 0n })).length).toBe(2);
    // a raised minStake deactivates a node staked below it, which can still settle (at the floor it staked under)
    await ch.wait(admin.setMinStake([E(100)]));
    await ch.stakeNode(ch.nodeA, E(100));
    const a = ch.nodeA.account.address;
    expect((await ch.read.nodeRegistry.read.nodeOf([a])).stakeFloor).toBe(E(100));
    await ch.wait(admin.setMinStake([E(101)]));
    expect(await ch.read.nodeRegistry.read.isActive([a])).toBe(false);
    expect(await ch.read.nodeRegistry.read.canSettle([a])).toBe(true);
    // ...until its stake falls under that floor too
    await ch.wait(ch.as(ch.nodeA).nodeRegistry.write.requestUnstake([1n]));
    expect(await ch.read.nodeRegistry.read.canSettle([a])).toBe(false);
    // a lowered minimum applies at once to both
    await ch.wait(admin.setMinStake([E(50)]));
    expect(await ch.read.nodeRegistry.read.isActive([a])).toBe(true);
    expect(await ch.read.nodeRegistry.read.canSettle([a])).toBe(true);
    expect(await ch.read.nodeRegistry.read.canSettle([ch.nodeB.account.address])).toBe(false); // never staked
  });

  it("a later unstake request never brings the end of an earlier unbonding sum forward", async () => {
    const a = ch.nodeA.account.address;
    await ch.stakeNode(ch.nodeA, E(150));
    const w = ch.as(ch.nodeA).nodeRegistry.write;
    await ch.wait(w.requestUnstake([E(50)]));
    const end = (await ch.read.nodeRegistry.read.nodeOf([a])).unbondingEnd;
    await ch.wait(ch.as(ch.deployer).nodeRegistry.write.setUnbondingPeriod([3600n]));
    await ch.wait(w.requestUnstake([1n]));
    const info = await ch.read.nodeRegistry.read.nodeOf([a]);
    expect(info.unbondingEnd).toBe(end);
    expect(info.unbonding).toBe(E(50) + 1n);
    // a later end does move it
    await ch.wait(ch.as(ch.deployer).nodeRegistry.write.setUnbondingPeriod([8n * 86400n]));
    const r = await ch.wait(w.requestUnstake([1n]));
    const t = (await ch.publicClient.getBlock({ blockNumber: r.blockNumber })).timestamp;
    expect((await ch.read.nodeRegistry.read.nodeOf([a])).unbondingEnd).toBe(t + 8n * 86400n);
  });

  it("constructor rejects zero addresses and bad parameters", async () => {
    const token = ch.deployment.contracts.OpenToken;
    const me = ch.deployer.account.address;
    await expectRevert(ch.viem.deployContract("NodeRegistry", [zeroAddress, me, me, 1n, 1n]), "ZeroAddress");
    await expectRevert(ch.viem.deployContract("NodeRegistry", [token, zeroAddress, me, 1n, 1n]), "ZeroAddress");
    await expectRevert(ch.viem.deployContract("NodeRegistry", [token, me, zeroAddress, 1n, 1n]), "ZeroAddress");
    await expectRevert(ch.viem.deployContract("NodeRegistry", [token, me, me, 0n, 1n]), "ZeroAmount");
  });
});

describe("AdapterRegistry", () => {
  const base = contentHashOf("base-model");

  it("register stores the listing under keccak256(registrant, contentHash) with its fixed attribution", async () => {
    const [a, b, c] = [ch.c1, ch.c2, ch.c3].map((w) => w.account.address);
    const hash = contentHashOf("sql-lora");
    const { result } = await ch
      .as(ch.adapterOwner)
      .adapterRegistry.simulate.register(
        [hash, base, 16, LISTING_SIZE, "ipfs://sql-lora", [a, b, c], [5000, 3000, 2000]],
        { account: ch.adapterOwner.account.address },
      );
    const id = await ch.registerListing(ch.adapterOwner, "sql-lora", [a, b, c], [5000, 3000, 2000]);
    expect(result).toBe(id);
    expect(id).toBe(
      keccak256(
        encodeAbiParameters([{ type: "address" }, { type: "bytes32" }], [ch.adapterOwner.account.address, hash]),
      ),
    );
    expect(await ch.read.adapterRegistry.read.listingIdOf([ch.adapterOwner.account.address, hash])).toBe(id);
    const l = await ch.read.adapterRegistry.read.listing([id]);
    expect(l).toMatchObject({
      registrant: ch.adapterOwner.account.address,
      rank: 16,
      retired: false,
      contentHash: hash,
      baseModelId: base,
      size: LISTING_SIZE,
      retiredAt: 0n,
      uri: "ipfs://sql-lora",
    });
    expect(l.registeredAt).toBeGreaterThan(0n);
    expect(await ch.read.adapterRegistry.read.contributorsOf([id])).toEqual([
      [a, b, c],
      [5000, 3000, 2000],
    ]);
    expect(await ch.read.adapterRegistry.read.weightOf([id, b])).toBe(3000);
    expect(await ch.read.adapterRegistry.read.weightOf([id, ch.stranger.account.address])).toBe(0);
    expect(await ch.read.adapterRegistry.read.isLive([id])).toBe(true);
    expect(await ch.read.adapterRegistry.read.isRegistered([id])).toBe(true);
    expect(await ch.read.adapterRegistry.read.isLive([hash])).toBe(false); // a content hash is not a listing id
    expect(await ch.read.adapterRegistry.read.isRegistered([contentHashOf("nope")])).toBe(false);
    const [log] = await ch.read.adapterRegistry.getEvents.ListingRegistered({ listingId: id }, { fromBlock: 0n });
    expect(log.args).toMatchObject({
      registrant: ch.adapterOwner.account.address,
      contentHash: hash,
      rank: 16,
      size: LISTING_SIZE,
    });
    const [attribution] = await ch.read.adapterRegistry.getEvents.ListingAttribution(
      { listingId: id },
      { fromBlock: 0n },
    );
    expect(attribution.args.contributors).toEqual([a, b, c]);
    expect(attribution.args.weightsBps).toEqual([5000, 3000, 2000]);
  });

  it("the same content listed by two registrants gives two listings; one registrant cannot list it twice", async () => {
    const a = ch.c1.account.address;
    const first = await ch.registerListing(ch.adapterOwner, "shared", [a], [10000]);
    const second = await ch.registerListing(ch.stranger, "shared", [ch.stranger.account.address], [10000]);
    expect(first).not.toBe(second);
    expect((await ch.read.adapterRegistry.read.listing([first])).contentHash).toBe(
      (await ch.read.adapterRegistry.read.listing([second])).contentHash,
    );
    await expectRevert(
      ch.as(ch.adapterOwner).adapterRegistry.write.register([contentHashOf("shared"), base, 8, 1n, "u", [a], [10000]]),
      "ListingExists",
      [first],
    );
  });

  it("register reverts on every malformed listing and attribution", async () => {
    const w = ch.as(ch.adapterOwner).adapterRegistry.write;
    const [a, b] = [ch.c1.account.address, ch.c2.account.address];
    const h = contentHashOf("x");
    await expectRevert(w.register([zeroHash, base, 8, 1n, "u", [a], [10000]]), "InvalidContentHash");
    await expectRevert(w.register([h, base, 0, 1n, "u", [a], [10000]]), "InvalidRank");
    await expectRevert(w.register([h, base, 8, 0n, "u", [a], [10000]]), "InvalidSize");
    await expectRevert(w.register([h, base, 8, 1n, "u", [], []]), "NoContributors");
    const many = Array.from({ length: 65 }, (_, i) => `0x${(i + 1).toString(16).padStart(40, "0")}` as Hex);
    await expectRevert(w.register([h, base, 8, 1n, "u", many, many.map(() => 1)]), "TooManyContributors", [65n, 64n]);
    await expectRevert(w.register([h, base, 8, 1n, "u", [a, b], [10000]]), "LengthMismatch");
    await expectRevert(w.register([h, base, 8, 1n, "u", [a, zeroAddress], [5000, 5000]]), "ZeroContributor");
    await expectRevert(w.register([h, base, 8, 1n, "u", [a, b], [10000, 0]]), "ZeroWeight", [b]);
    await expectRevert(w.register([h, base, 8, 1n, "u", [a, a], [5000, 5000]]), "DuplicateContributor", [a]);
    await expectRevert(w.register([h, base, 8, 1n, "u", [a, b], [5000, 4999]]), "WeightsNotFull", [9999n]);
    // 64 contributors is the most, and fits
    const weights = many.slice(0, 64).map((_, i) => (i < 16 ? 157 : 156));
    expect(weights.reduce((x, y) => x + y, 0)).toBe(10000);
    await ch.wait(w.register([h, base, 8, 1n, "u", many.slice(0, 64), weights]));
  });

  it("setUri and retire by the registrant only; retired is final and keeps the attribution", async () => {
    const id = await ch.registerListing(ch.adapterOwner, "a1", [ch.c1.account.address], [10000]);
    const own = ch.as(ch.adapterOwner).adapterRegistry.write;
    const other = ch.as(ch.stranger).adapterRegistry.write;
    const unknown = contentHashOf("unknown");
    await expectRevert(other.setUri([id, "x"]), "NotRegistrant", [id, ch.stranger.account.address]);
    await expectRevert(other.retire([id]), "NotRegistrant", [id, ch.stranger.account.address]);
    await expectRevert(own.setUri([unknown, "x"]), "UnknownListing", [unknown]);
    await expectRevert(own.retire([unknown]), "UnknownListing", [unknown]);
    await ch.wait(own.setUri([id, "ipfs://new"]));
    expect((await ch.read.adapterRegistry.read.listing([id])).uri).toBe("ipfs://new");
    const r = await ch.wait(own.retire([id]));
    const t = (await ch.publicClient.getBlock({ blockNumber: r.blockNumber })).timestamp;
    expect(await ch.read.adapterRegistry.read.isLive([id])).toBe(false);
    expect(await ch.read.adapterRegistry.read.isRegistered([id])).toBe(true);
    expect(await ch.read.adapterRegistry.read.listing([id])).toMatchObject({ retired: true, retiredAt: t });
    await expectRevert(own.retire([id]), "ListingIsRetired", [id]);
    await expectRevert(own.setUri([id, "y"]), "ListingIsRetired", [id]);
    expect((await ch.read.adapterRegistry.getEvents.ListingUriSet({ listingId: id }, { fromBlock: 0n })).length).toBe(
      1,
    );
    const [retired] = await ch.read.adapterRegistry.getEvents.ListingRetired({ listingId: id }, { fromBlock: 0n });
    expect(retired.args.contentHash).toBe(contentHashOf("a1"));
    // the attribution survives retirement (contributors keep claiming past accruals)
    expect(await ch.read.adapterRegistry.read.weightOf([id, ch.c1.account.address])).toBe(10000);
  });
});
