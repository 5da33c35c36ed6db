// Property-based invariants: fast-check drives random sequences of calls (deposits, vouchers signed and settled in
// batches with replays, tampering and foreign domains, claims, withdrawals, staking, slashing, retirement, time)
// against the contracts and a small TypeScript model of what each call must do. Each run starts from a snapshot.
// After every call the call's own outcome is checked against the model (events, skip reasons, reverts); after every
// run (and every settle) the global invariants are checked:
//   - the token supply is conserved across every account and contract;
//   - the escrow holds exactly the payers' balances plus the unclaimed contributor pools;
//   - no channel is settled beyond the highest voucher its payer signed, and each channel paid exactly its settled sum;
//   - per adapter the claims never exceed what the pool accrued, and no contributor exceeds its weighted share;
//   - the node registry holds exactly the bonded and unbonding stake.
// Sizes: INVARIANT_RUNS (default 200) runs of up to INVARIANT_STEPS (default 40) calls.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keccak256, maxUint256, parseEventLogs, toHex, type Address, type Hex } from "viem";
import { inferenceEscrowAbi } from "../../node/chain/abi.ts";
import { signVoucher, skipReasonName, type SkipReasonName, type Voucher } from "../../node/chain/voucher.ts";
import { createChain, E, peerIdOf, revertOf, type Chain } from "./fixture.ts";

const RUNS = Number(process.env.INVARIANT_RUNS ?? 200);
const STEPS = Number(process.env.INVARIANT_STEPS ?? 40);
const SEED = process.env.INVARIANT_SEED === undefined ? undefined : Number(process.env.INVARIANT_SEED);

const FEE = 500n;
const SHARE = 2000n;
const MIN_STAKE = E(100);
const UNBONDING = 7n * 86400n;
const DELAY = 86400n;
const START_DEPOSIT = E(50);

type Wallet = Chain["payerA"];

// ---- actions (generated) ----
type Action =
  | { kind: "deposit"; payer: number; amount: bigint }
  | { kind: "sign"; payer: number; node: number; adapter: number; delta: bigint }
  | { kind: "settle"; node: number; picks: { idx: number; mutate: number }[] }
  | { kind: "claim"; contributor: number; adapters: number[] }
  | { kind: "requestWithdraw"; payer: number; permille: number }
  | { kind: "withdraw"; payer: number }
  | { kind: "time"; seconds: bigint }
  | { kind: "slash"; node: number; amount: bigint }
  | { kind: "unstake"; node: number; amount: bigint }
  | { kind: "stake"; node: number; amount: bigint }
  | { kind: "withdrawStake"; node: number }
  | { kind: "retire" };

const wei = (maxEther: number) =>
  fc.bigInt({ min: 1n, max: E(maxEther) }).map((x) => (x % 3n === 0n ? x : (x / 10n ** 15n) * 10n ** 15n + 1n));
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("deposit" as const), payer: fc.nat(2), amount: wei(150) }) },
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant("sign" as const),
      payer: fc.nat(2),
      node: fc.oneof({ weight: 8, arbitrary: fc.nat(1) }, fc.constant(2)), // 2 = the never-staked stranger
      adapter: fc.oneof({ weight: 8, arbitrary: fc.nat(2) }, fc.constant(3)), // 3 = an unknown adapter
      delta: fc.bigInt({ min: -E(3), max: E(25) }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("settle" as const),
      node: fc.oneof({ weight: 8, arbitrary: fc.nat(1) }, fc.constant(2)),
      picks: fc.array(
        fc.record({
          idx: fc.nat(1000),
          mutate: fc.oneof(
            { weight: 10, arbitrary: fc.constant(0) },
            { weight: 3, arbitrary: fc.constantFrom(1, 2, 3) },
            { weight: 3, arbitrary: fc.constant(4) },
          ),
        }),
        { maxLength: 8 },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("claim" as const),
      contributor: fc.nat(3), // 3 = not a contributor
      adapters: fc.array(fc.nat(3), { minLength: 1, maxLength: 4 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("requestWithdraw" as const), payer: fc.nat(2), permille: fc.nat(1100) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("withdraw" as const), payer: fc.nat(2) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("time" as const),
      seconds: fc.constantFrom(60n, 3600n, 86400n, 8n * 86400n),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("slash" as const), node: fc.nat(1), amount: wei(60) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("unstake" as const), node: fc.nat(1), amount: wei(60) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("stake" as const), node: fc.nat(1), amount: wei(120) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("withdrawStake" as const), node: fc.nat(1) }) },
  { weight: 1, arbitrary: fc.constant({ kind: "retire" as const }) },
);

// ---- model ----
interface SignedVoucher {
  voucher: Voucher;
  signature: Hex;
}
interface Model {
  t: bigint; // timestamp of the last mined block
  escrowBal: Map<Address, bigint>;
  withdrawal: Map<Address, { amount: bigint; at: bigint }>;
  settled: Map<string, bigint>;
  highest: Map<string, bigint>;
  paidOnChannel: Map<string, bigint>;
  pool: SignedVoucher[];
  accrued: Map<Hex, bigint>;
  claimed: Map<string, bigint>;
  nodes: Map<Address, { bonded: bigint; unbonding: bigint; end: bigint }>;
  retired: Set<Hex>;
}
const chan = (payer: Address, node: Address, adapter: Hex) => `${payer}:${node}:${adapter}`;
const get = <K>(m: Map<K, bigint>, k: K) => m.get(k) ?? 0n;

let ch: Chain;
let base: Hex;
let payers: Wallet[];
let nodes: Wallet[];
let contributors: Wallet[];
let adapterIds: Hex[]; // X, Y, Z registered (Z may be retired), U unknown
let weights: Map<Hex, Map<Address, bigint>>;
let everyone: Address[];
let supply: bigint;
let actionsRun = 0;
let settlesRun = 0;
let vouchersSubmitted = 0;
const outcomes = new Map<string, number>();
const calls = new Map<string, number>();

beforeAll(async () => {
  ch = await createChain();
  payers = [ch.payerA, ch.payerB, ch.payerC];
  nodes = [ch.nodeA, ch.nodeB, ch.stranger];
  contributors = [ch.c1, ch.c2, ch.c3, ch.stranger];
  const [c1, c2, c3] = contributors.map((w) => w.account.address);
  const X = await ch.registerAdapter(ch.adapterOwner, "inv-X", [c1, c2, c3], [3334, 3333, 3333]);
  const Y = await ch.registerAdapter(ch.adapterOwner, "inv-Y", [c1], [10000]);
  const Z = await ch.registerAdapter(ch.adapterOwner, "inv-Z", [c2, c3], [9999, 1]);
  adapterIds = [X, Y, Z, keccak256(toHex("inv-unknown"))];
  weights = new Map([
    [X, new Map([[c1, 3334n], [c2, 3333n], [c3, 3333n]])],
    [Y, new Map([[c1, 10000n]])],
    [Z, new Map([[c2, 9999n], [c3, 1n]])],
  ]);
  for (const p of payers) {
    await ch.fund(p.account.address, E(20_000));
    await ch.approve(p, ch.deployment.contracts.InferenceEscrow, maxUint256);
    await ch.wait(ch.as(p).escrow.write.deposit([START_DEPOSIT]));
  }
  for (const n of [ch.nodeA, ch.nodeB]) {
    await ch.fund(n.account.address, E(2000));
    await ch.approve(n, ch.deployment.contracts.NodeRegistry, maxUint256);
    await ch.wait(ch.as(n).nodeRegistry.write.stake([E(150), peerIdOf(n.account.address), "e"]));
  }
  everyone = [
    ...ch.wallets.map((w) => w.account.address),
    ch.deployment.contracts.InferenceEscrow,
    ch.deployment.contracts.NodeRegistry,
    ch.deployment.contracts.AdapterRegistry,
    ch.deployment.contracts.OpenToken,
  ];
  supply = await ch.read.token.read.totalSupply();
  base = await ch.snapshot();
});

afterAll(() => {
  console.log(
    `invariants: ${RUNS} runs x up to ${STEPS} calls; ${actionsRun} calls, ${settlesRun} settle batches, ${vouchersSubmitted} vouchers submitted; voucher outcomes ${JSON.stringify(Object.fromEntries(outcomes))}; calls ${JSON.stringify(Object.fromEntries([...calls].sort()))}`,
  );
});

async function freshModel(): Promise<Model> {
  const block = await ch.publicClient.getBlock();
  return {
    t: block.timestamp,
    escrowBal: new Map(payers.map((p) => [p.account.address, START_DEPOSIT] as const)),
    withdrawal: new Map(),
    settled: new Map(),
    highest: new Map(),
    paidOnChannel: new Map(),
    pool: [],
    accrued: new Map(),
    claimed: new Map(),
    nodes: new Map(
      [ch.nodeA, ch.nodeB].map((n) => [n.account.address, { bonded: E(150), unbonding: 0n, end: 0n }] as const),
    ),
    retired: new Set(),
  };
}

/** Run a transaction at the model's next timestamp; returns the receipt, or the custom error name on revert. */
async function tx(m: Model, label: string, send: () => Promise<Hex>) {
  const r = await txInner(m, send);
  const k = `${label}:${r.error ?? "ok"}`;
  calls.set(k, (calls.get(k) ?? 0) + 1);
  return r;
}
async function txInner(m: Model, send: () => Promise<Hex>) {
  m.t += 1n;
  await ch.testClient.setNextBlockTimestamp({ timestamp: m.t });
  try {
    const hash = await send();
    return { receipt: await ch.wait(hash), error: undefined };
  } catch (e) {
    const { errorName } = await revertOf(Promise.reject(e));
    return { receipt: undefined, error: errorName };
  }
}

const isActive = (m: Model, node: Address) => {
  const n = m.nodes.get(node);
  return n !== undefined && n.bonded >= MIN_STAKE;
};
const isLive = (m: Model, id: Hex) => weights.has(id) && !m.retired.has(id);

async function step(m: Model, a: Action): Promise<void> {
  actionsRun++;
  switch (a.kind) {
    case "deposit": {
      const p = payers[a.payer];
      const r = await tx(m, "deposit", () => ch.as(p).escrow.write.deposit([a.amount]));
      expect(r.error).toBeUndefined();
      m.escrowBal.set(p.account.address, get(m.escrowBal, p.account.address) + a.amount);
      return;
    }
    case "sign": {
      const p = payers[a.payer].account.address;
      const node = nodes[a.node].account.address;
      const id = adapterIds[a.adapter];
      const key = chan(p, node, id);
      const top = get(m.highest, key);
      const cum = top + a.delta > 0n ? top + a.delta : 1n;
      const voucher: Voucher = { payer: p, node, adapterId: id, cumulativeAmount: cum };
      m.pool.push({ voucher, signature: await signVoucher(payers[a.payer], voucher, ch.domain) });
      if (cum > top) m.highest.set(key, cum);
      return;
    }
    case "settle": {
      settlesRun++;
      const caller = nodes[a.node];
      const me = caller.account.address;
      // mutate: 0 none, 1 amount tampered after signing, 2 signed for another chain, 3 signed for another
      // contract, 4 none but drawn from every node's vouchers (the others come from the caller's own, when any)
      const own = m.pool.filter((x) => x.voucher.node === me);
      const batch: { sv: SignedVoucher; validSig: boolean }[] = [];
      // mostly a voucher of the caller's, on a live adapter, that would still grow its channel (each drawn once),
      // else anything in the pool (replays, other nodes' vouchers); the model decides what each must do either way
      const growing = own.filter(
        (x) =>
          isLive(m, x.voucher.adapterId) &&
          x.voucher.cumulativeAmount > get(m.settled, chan(x.voucher.payer, x.voucher.node, x.voucher.adapterId)),
      );
      for (const pick of a.picks) {
        const from = pick.mutate === 4 ? m.pool : growing;
        if (from.length === 0) continue;
        const sv = from[pick.idx % from.length];
        if (from === growing) growing.splice(pick.idx % from.length, 1);
        const payerWallet = payers.find((w) => w.account.address === sv.voucher.payer)!;
        if (pick.mutate === 1) {
          batch.push({ sv: { voucher: { ...sv.voucher, cumulativeAmount: sv.voucher.cumulativeAmount + 1n }, signature: sv.signature }, validSig: false });
        } else if (pick.mutate === 2) {
          const sig = await signVoucher(payerWallet, sv.voucher, { chainId: ch.chainId + 1, verifyingContract: ch.domain.verifyingContract });
          batch.push({ sv: { voucher: sv.voucher, signature: sig }, validSig: false });
        } else if (pick.mutate === 3) {
          const sig = await signVoucher(payerWallet, sv.voucher, { chainId: ch.chainId, verifyingContract: ch.deployment.contracts.AdapterRegistry });
          batch.push({ sv: { voucher: sv.voucher, signature: sig }, validSig: false });
        } else batch.push({ sv, validSig: true });
      }
      vouchersSubmitted += batch.length;
      const r = await tx(m, "settle", () =>
        ch.as(caller).escrow.write.settle([batch.map((b) => b.sv.voucher), batch.map((b) => b.sv.signature)]),
      );
      if (!isActive(m, me)) {
        expect(r.error).toBe("NotActiveNode");
        outcomes.set("NotActiveNode(batch)", (outcomes.get("NotActiveNode(batch)") ?? 0) + 1);
        return;
      }
      expect(r.error).toBeUndefined();
      // the model's verdict on each voucher, in order
      const want: ({ reason: SkipReasonName } | { amount: bigint })[] = [];
      let fees = 0n;
      let toNode = 0n;
      for (const { sv, validSig } of batch) {
        const v = sv.voucher;
        const key = chan(v.payer, v.node, v.adapterId);
        const done = get(m.settled, key);
        const amount = v.cumulativeAmount - done;
        if (v.node !== me) want.push({ reason: "WrongNode" });
        else if (!isLive(m, v.adapterId)) want.push({ reason: "AdapterNotLive" });
        else if (v.cumulativeAmount <= done) want.push({ reason: "NotGrowing" });
        else if (!validSig) want.push({ reason: "BadSignature" });
        else if (get(m.escrowBal, v.payer) < amount) want.push({ reason: "InsufficientFunds" });
        else {
          want.push({ amount });
          m.escrowBal.set(v.payer, get(m.escrowBal, v.payer) - amount);
          m.settled.set(key, v.cumulativeAmount);
          m.paidOnChannel.set(key, get(m.paidOnChannel, key) + amount);
          const fee = (amount * FEE) / 10000n;
          const share = (amount * SHARE) / 10000n;
          m.accrued.set(v.adapterId, get(m.accrued, v.adapterId) + share);
          fees += fee;
          toNode += amount - fee - share;
        }
      }
      const logs = parseEventLogs({ abi: inferenceEscrowAbi, logs: r.receipt!.logs }).filter(
        (l) => l.eventName === "VoucherSettled" || l.eventName === "VoucherSkipped",
      );
      const got = logs.map((l) =>
        l.eventName === "VoucherSkipped" ? { reason: skipReasonName(l.args.reason) } : { amount: (l.args as { amount: bigint }).amount },
      );
      expect(got).toEqual(want);
      for (const w of want) {
        const k = "reason" in w ? w.reason : "Settled";
        outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
      }
      const batchLog = parseEventLogs({ abi: inferenceEscrowAbi, logs: r.receipt!.logs, eventName: "BatchSettled" })[0];
      expect(batchLog.args.protocolFee).toBe(fees);
      expect(batchLog.args.paid - batchLog.args.protocolFee - batchLog.args.contributorShare).toBe(toNode);
      await checkInvariants(m);
      return;
    }
    case "claim": {
      const c = contributors[a.contributor];
      const who = c.account.address;
      const ids = a.adapters.map((i) => adapterIds[i]);
      let total = 0n;
      for (const id of ids) {
        const w = weights.get(id)?.get(who) ?? 0n;
        const due = (get(m.accrued, id) * w) / 10000n;
        const k = `${id}:${who}`;
        if (due > get(m.claimed, k)) {
          total += due - get(m.claimed, k);
          m.claimed.set(k, due);
        }
      }
      const before = await ch.tokenBalance(who);
      const r = await tx(m, "claim", () => ch.as(c).escrow.write.claim([ids]));
      if (total === 0n) expect(r.error).toBe("NothingToClaim");
      else {
        expect(r.error).toBeUndefined();
        expect((await ch.tokenBalance(who)) - before).toBe(total);
      }
      return;
    }
    case "requestWithdraw": {
      const p = payers[a.payer];
      const bal = get(m.escrowBal, p.account.address);
      const amount = (bal * BigInt(a.permille)) / 1000n;
      const r = await tx(m, "requestWithdraw", () => ch.as(p).escrow.write.requestWithdraw([amount]));
      if (amount === 0n) expect(r.error).toBe("ZeroAmount");
      else if (amount > bal) expect(r.error).toBe("InsufficientBalance");
      else {
        expect(r.error).toBeUndefined();
        m.withdrawal.set(p.account.address, { amount, at: m.t + DELAY });
      }
      return;
    }
    case "withdraw": {
      const p = payers[a.payer];
      const req = m.withdrawal.get(p.account.address);
      const before = await ch.tokenBalance(p.account.address);
      const r = await tx(m, "withdraw", () => ch.as(p).escrow.write.withdraw());
      if (!req) expect(r.error).toBe("NoWithdrawalPending");
      else if (m.t < req.at) expect(r.error).toBe("WithdrawalNotReady");
      else {
        expect(r.error).toBeUndefined();
        const bal = get(m.escrowBal, p.account.address);
        const out = req.amount < bal ? req.amount : bal;
        m.escrowBal.set(p.account.address, bal - out);
        m.withdrawal.delete(p.account.address);
        expect((await ch.tokenBalance(p.account.address)) - before).toBe(out);
      }
      return;
    }
    case "time": {
      m.t += a.seconds;
      await ch.testClient.setNextBlockTimestamp({ timestamp: m.t });
      await ch.testClient.mine({ blocks: 1 });
      return;
    }
    case "slash": {
      const addr = nodes[a.node].account.address;
      const n = m.nodes.get(addr)!;
      const r = await tx(m, "slash", () => ch.as(ch.deployer).nodeRegistry.write.slash([addr, a.amount, keccak256(toHex("evidence"))]));
      if (n.bonded + n.unbonding === 0n) expect(r.error).toBe("NotStaked");
      else {
        expect(r.error).toBeUndefined();
        const fromBonded = a.amount < n.bonded ? a.amount : n.bonded;
        const rest = a.amount - fromBonded;
        n.bonded -= fromBonded;
        n.unbonding -= rest < n.unbonding ? rest : n.unbonding;
      }
      return;
    }
    case "unstake": {
      const w = nodes[a.node];
      const n = m.nodes.get(w.account.address)!;
      const r = await tx(m, "requestUnstake", () => ch.as(w).nodeRegistry.write.requestUnstake([a.amount]));
      if (a.amount > n.bonded) expect(r.error).toBe("InsufficientStake");
      else {
        expect(r.error).toBeUndefined();
        n.bonded -= a.amount;
        n.unbonding += a.amount;
        n.end = m.t + UNBONDING;
      }
      return;
    }
    case "stake": {
      const w = nodes[a.node];
      const n = m.nodes.get(w.account.address)!;
      const r = await tx(m, "stake", () => ch.as(w).nodeRegistry.write.stake([a.amount, peerIdOf(w.account.address), "e"]));
      if (n.bonded + a.amount < MIN_STAKE) expect(r.error).toBe("BelowMinStake");
      else {
        expect(r.error).toBeUndefined();
        n.bonded += a.amount;
      }
      return;
    }
    case "withdrawStake": {
      const w = nodes[a.node];
      const n = m.nodes.get(w.account.address)!;
      const r = await tx(m, "withdrawStake", () => ch.as(w).nodeRegistry.write.withdrawStake());
      if (n.unbonding === 0n) expect(r.error).toBe("NothingToWithdraw");
      else if (m.t < n.end) expect(r.error).toBe("StillUnbonding");
      else {
        expect(r.error).toBeUndefined();
        n.unbonding = 0n;
        n.end = 0n;
      }
      return;
    }
    case "retire": {
      const Z = adapterIds[2];
      const r = await tx(m, "retire", () => ch.as(ch.adapterOwner).adapterRegistry.write.retire([Z]));
      if (m.retired.has(Z)) expect(r.error).toBe("AdapterIsRetired");
      else {
        expect(r.error).toBeUndefined();
        m.retired.add(Z);
      }
      return;
    }
  }
}

async function checkInvariants(m: Model): Promise<void> {
  const { token, escrow, nodeRegistry } = ch.read;
  // 1. conservation of the token supply over every holder
  expect(await token.read.totalSupply()).toBe(supply);
  const balances = await Promise.all(everyone.map((a) => token.read.balanceOf([a])));
  expect(balances.reduce((x, y) => x + y, 0n)).toBe(supply);
  // 2. the escrow holds payers' balances plus unclaimed pools, and each balance matches the model
  let owed = 0n;
  for (const p of payers) {
    const b = await escrow.read.balanceOf([p.account.address]);
    expect(b).toBe(get(m.escrowBal, p.account.address));
    owed += b;
  }
  for (const id of adapterIds) {
    const acc = await escrow.read.accrued([id]);
    expect(acc).toBe(get(m.accrued, id));
    let claimedSum = 0n;
    for (const c of contributors) {
      const cl = await escrow.read.claimed([id, c.account.address]);
      const w = weights.get(id)?.get(c.account.address) ?? 0n;
      // 4. no contributor beyond its share; the sum of claims within the pool
      expect(cl).toBeLessThanOrEqual((acc * w) / 10000n);
      claimedSum += cl;
    }
    expect(claimedSum).toBeLessThanOrEqual(acc);
    owed += acc - claimedSum;
  }
  expect(await token.read.balanceOf([ch.deployment.contracts.InferenceEscrow])).toBe(owed);
  // 3. no channel paid beyond the highest voucher signed on it; what it paid is its settled amount
  for (const [key, s] of m.settled) {
    const [payer, node, id] = key.split(":") as [Address, Address, Hex];
    expect(await escrow.read.settled([payer, node, id])).toBe(s);
    expect(s).toBeLessThanOrEqual(get(m.highest, key));
    expect(get(m.paidOnChannel, key)).toBe(s);
  }
  // 5. the registry holds exactly the stake
  let staked = 0n;
  for (const [addr, n] of m.nodes) {
    const info = await nodeRegistry.read.nodeOf([addr]);
    expect([info.stake, info.unbonding]).toEqual([n.bonded, n.unbonding]);
    staked += n.bonded + n.unbonding;
  }
  expect(await token.read.balanceOf([ch.deployment.contracts.NodeRegistry])).toBe(staked);
}

describe("invariants over random call sequences", () => {
  it(`hold for ${RUNS} runs of up to ${STEPS} calls`, { timeout: 300_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 1, maxLength: STEPS, size: "max" }), async (actions) => {
        await ch.revertTo(base);
        base = await ch.snapshot();
        const m = await freshModel();
        for (const a of actions) await step(m, a);
        await checkInvariants(m);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: false },
    );
  });
});
