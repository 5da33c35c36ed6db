// Property-based invariants: fast-check drives random sequences of calls against the contracts and a TypeScript
// model of what each call must do: deposits and withdrawals per (payer, node) in wei-sized and ether-sized amounts,
// vouchers signed and settled in batches with replays, tampering and foreign domains, listings registered mid-run
// with random attributions of 1 to 64 contributors (and retired), claims, staking, unbonding, slashing, time, and
// admin changes (scheduled fees, withdrawal delay and window, minimum stake, unbonding period, treasury). Each run
// starts from a snapshot. Checked:
//   - after EVERY call: its outcome (events, skip reasons, custom errors) and the exact token balance of every
//     holder (all accounts, all contributors, the four contracts) against the model, to the wei;
//   - after every settle and every run: each (payer, node) deposit and available amount, each channel's settled
//     amount (never beyond the highest voucher signed on it, each paid exactly once), each pool's accrual, and the
//     registry's stake records;
//   - a final exit ending every run: every contributor claims every listing, every payer withdraws every deposit;
//     then the escrow holds only the documented rounding dust (per listing, accrued minus the floored weighted
//     shares: fewer wei than it has contributors), no contributor has claimed beyond its share.
// Minimum counts per outcome over all runs make the test fail if nothing ever settles, claims, lapses, etc.
// Sizes: INVARIANT_RUNS (default 60) runs of STEPS/2 to INVARIANT_STEPS (default 40) calls plus the exit;
// INVARIANT_SEED replays a failure.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWalletClient, custom, keccak256, maxUint256, parseEventLogs, toHex, type Address, type Hex } from "viem";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { getContracts } from "../../node/chain/contracts.ts";
import { inferenceEscrowAbi } from "../../node/chain/generated/abi.ts";
import { listingIdOf } from "../../node/chain/listing.ts";
import { signVoucher, skipReasonName, type SkipReasonName, type Voucher } from "../../node/chain/voucher.ts";
import { contentHashOf, createChain, E, peerIdOf, revertOf, type Chain } from "./fixture.ts";

const RUNS = Number(process.env.INVARIANT_RUNS ?? 60);
const STEPS = Number(process.env.INVARIANT_STEPS ?? 40);
// A fresh seed each time (more sequences over time), printed so that a failure can be replayed.
const SEED =
  process.env.INVARIANT_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.INVARIANT_SEED);

const DAY = 86400n;
const START_DEPOSIT = E(20);
const POOL = 66; // contributor accounts (local keys): more than one listing's 64
const CONTENTS = 4; // content hashes listed mid-run: few, so registrants collide and list the same weights

type Wallet = Chain["payerA"];

// ---- actions (generated) ----
type Action =
  | { kind: "deposit"; payer: number; node: number; amount: bigint }
  | { kind: "sign"; payer: number; node: number; listing: number; delta: bigint }
  | { kind: "settle"; node: number; picks: { idx: number; mutate: number }[] }
  | { kind: "claim"; contributor: number; listings: number[] }
  | { kind: "requestWithdraw"; payer: number; node: number; permille: number }
  | { kind: "cancelWithdraw"; payer: number; node: number }
  | { kind: "withdraw"; payer: number; node: number; pending: number; at: Boundary }
  | { kind: "time"; seconds: bigint }
  | { kind: "feesDue"; offset: bigint }
  | { kind: "register"; registrant: number; content: number; contributors: number[]; raw: number[] }
  | { kind: "retire"; caller: number; listing: number }
  | { kind: "slash"; node: number; amount: bigint }
  | { kind: "unstake"; node: number; amount: bigint }
  | { kind: "stake"; node: number; amount: bigint }
  | { kind: "withdrawStake"; node: number; atEnd: bigint | null }
  | { kind: "scheduleFees"; fee: number; share: number }
  | { kind: "setWithdrawDelay"; delay: bigint }
  | { kind: "setWithdrawWindow"; window: bigint }
  | { kind: "setMinStake"; amount: bigint }
  | { kind: "setUnbondingPeriod"; period: bigint }
  | { kind: "setTreasury"; to: number };

/** When a withdraw is sent: now, or time-travelled to 1 s before or exactly at the request's maturity or lapse. */
type Boundary = { to: "available" | "expiry"; offset: bigint } | null;
const boundary: fc.Arbitrary<Boundary> = fc.constantFrom<Boundary>(
  null,
  { to: "available", offset: -1n },
  { to: "available", offset: 0n },
  { to: "expiry", offset: -1n },
  { to: "expiry", offset: 0n },
);

/** Amounts from 1 wei to `maxEther`, often tiny (wei-sized), often awkward (every split rounds). */
const amount = (maxEther: number) =>
  fc.oneof(
    { weight: 2, arbitrary: fc.bigInt({ min: 1n, max: 1000n }) },
    { weight: 5, arbitrary: fc.bigInt({ min: 1n, max: E(maxEther) }) },
  );
const seconds = fc.constantFrom(1n, 60n, 3600n, DAY, 3n * DAY, 8n * DAY);
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("deposit" as const),
      payer: fc.nat(2),
      node: fc.nat(2),
      amount: amount(150),
    }),
  },
  {
    weight: 20,
    arbitrary: fc.record({
      kind: fc.constant("sign" as const),
      payer: fc.nat(2),
      node: fc.oneof({ weight: 8, arbitrary: fc.nat(1) }, fc.constant(2)), // 2 = the never-staked stranger
      listing: fc.nat(1000), // modulo the listings known at that point, plus one unknown id
      delta: fc.oneof(fc.bigInt({ min: -3n, max: 1000n }), fc.bigInt({ min: -E(3), max: E(25) })),
    }),
  },
  {
    weight: 10,
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
      contributor: fc.nat(POOL - 1),
      listings: fc.array(fc.nat(1000), { minLength: 1, maxLength: 4 }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("requestWithdraw" as const),
      payer: fc.nat(2),
      node: fc.nat(2),
      permille: fc.nat(1100),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("cancelWithdraw" as const), payer: fc.nat(2), node: fc.nat(2) }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("withdraw" as const),
      payer: fc.nat(2),
      node: fc.nat(2),
      pending: fc.oneof({ weight: 3, arbitrary: fc.nat(100) }, fc.constant(-1)), // mostly a pair with a request
      at: boundary,
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("time" as const), seconds }) },
  {
    // the next call lands exactly when (0) or one second before (-1) scheduled fees take effect
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("feesDue" as const), offset: fc.constantFrom(-1n, 0n) }),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.nat(2),
        fc.nat(CONTENTS - 1),
        // a third each: few, some, many contributors (up to the 64 allowed)
        fc.nat(2).chain((k) =>
          fc.integer(
            [
              { min: 1, max: 4 },
              { min: 5, max: 32 },
              { min: 33, max: 64 },
            ][k],
          ),
        ),
      )
      .chain(([registrant, content, count]) =>
        fc.record({
          kind: fc.constant("register" as const),
          registrant: fc.constant(registrant),
          content: fc.constant(content),
          contributors: fc.uniqueArray(fc.nat(POOL - 1), { minLength: count, maxLength: count }),
          raw: fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: count, maxLength: count }),
        }),
      ),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("retire" as const),
      caller: fc.oneof({ weight: 2, arbitrary: fc.constant(-1) }, fc.nat(2)), // -1: the listing's registrant
      listing: fc.nat(1000),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("slash" as const), node: fc.nat(1), amount: amount(60) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("unstake" as const), node: fc.nat(1), amount: amount(60) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("stake" as const), node: fc.nat(1), amount: amount(120) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("withdrawStake" as const),
      node: fc.nat(1),
      atEnd: fc.oneof(fc.constant(null), fc.constantFrom(-1n, 0n)), // or at (one second before) the unbonding end
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("scheduleFees" as const),
      fee: fc.oneof({ weight: 6, arbitrary: fc.nat(1000) }, fc.integer({ min: 1001, max: 10000 })),
      share: fc.oneof({ weight: 6, arbitrary: fc.nat(5000) }, fc.integer({ min: 5001, max: 10000 })),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("setWithdrawDelay" as const),
      delay: fc.constantFrom(0n, 3599n, 3600n, 7200n, DAY, 2n * DAY, 30n * DAY + 1n),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("setWithdrawWindow" as const),
      window: fc.constantFrom(0n, 3600n, 7200n, DAY, 3n * DAY, 31n * DAY),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("setMinStake" as const),
      amount: fc.constantFrom(0n, E(50), E(100), E(150) + 1n, E(400), E(400)),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("setUnbondingPeriod" as const),
      period: fc.constantFrom(0n, 3600n, DAY, 7n * DAY, 366n * DAY),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("setTreasury" as const), to: fc.nat(1) }) },
);

const contentName = (i: number) => `inv-content-${i}`;

/** Weights of `raw` scaled to 10000 in total, each at least 1: a random attribution. */
function weightsOf(raw: number[]): number[] {
  const sum = raw.reduce((a, b) => a + b, 0);
  const spare = 10000 - raw.length;
  const w = raw.map((r) => 1 + Math.floor((r * spare) / sum));
  let left = 10000 - w.reduce((a, b) => a + b, 0);
  for (let i = 0; left > 0; i = (i + 1) % w.length, left--) w[i]++;
  return w;
}

// ---- model ----
interface SignedVoucher {
  voucher: Voucher;
  signature: Hex;
}
interface ListingModel {
  id: Hex;
  registrant: Address;
  weights: Map<Address, bigint>;
  retired: boolean;
}
interface NodeModel {
  bonded: bigint;
  unbonding: bigint;
  end: bigint;
  floor: bigint;
}
interface Model {
  t: bigint; // timestamp of the last mined block
  tokens: Map<Address, bigint>; // every holder's token balance
  deposits: Map<string, bigint>; // payer:node
  withdrawals: Map<string, { amount: bigint; at: bigint; expires: bigint }>;
  settled: Map<string, bigint>; // payer:node:listing
  highest: Map<string, bigint>;
  paidOnChannel: Map<string, bigint>;
  pool: SignedVoucher[];
  listings: ListingModel[];
  accrued: Map<Hex, bigint>;
  claimed: Map<string, bigint>; // listing:contributor
  nodes: Map<Address, NodeModel>;
  minStake: bigint;
  unbondingPeriod: bigint;
  treasury: Address;
  fee: bigint;
  share: bigint;
  next: { fee: bigint; share: bigint; at: bigint } | null;
  delay: bigint;
  window: bigint;
}
const pair = (payer: Address, node: Address) => `${payer}:${node}`;
const chan = (payer: Address, node: Address, listing: Hex) => `${payer}:${node}:${listing}`;
const get = <K>(m: Map<K, bigint>, k: K) => m.get(k) ?? 0n;
const min = (a: bigint, b: bigint) => (a < b ? a : b);

let ch: Chain;
let base: Hex;
let baseModel: Model;
let payers: Wallet[];
let nodes: Wallet[];
let registrants: Wallet[];
let contributors: PrivateKeyAccount[];
let claimAs: ReturnType<typeof getContracts<{ public: Chain["publicClient"]; wallet: Wallet }>>[];
let balanceReader: Awaited<ReturnType<Chain["viem"]["deployContract"]>>;
let holders: Address[];
let escrow: Address;
let registry: Address;
const unknownListing = keccak256(toHex("inv-unknown"));
const outcomes = new Map<string, number>();
const count = (k: string, n = 1) => outcomes.set(k, (outcomes.get(k) ?? 0) + n);

beforeAll(async () => {
  ch = await createChain();
  escrow = ch.deployment.contracts.InferenceEscrow;
  registry = ch.deployment.contracts.NodeRegistry;
  payers = [ch.payerA, ch.payerB, ch.payerC];
  nodes = [ch.nodeA, ch.nodeB, ch.stranger];
  registrants = [ch.adapterOwner, ch.stranger, ch.author];
  contributors = Array.from({ length: POOL }, (_, i) => privateKeyToAccount(keccak256(toHex(`inv contributor ${i}`))));
  claimAs = [];
  for (const account of contributors) {
    await ch.testClient.setBalance({ address: account.address, value: E(1000) });
    const wallet = createWalletClient({ account, chain: ch.publicClient.chain, transport: custom(ch.conn.provider) });
    claimAs.push(
      getContracts({ public: ch.publicClient, wallet: wallet as unknown as Wallet }, ch.deployment.contracts),
    );
  }
  balanceReader = await ch.viem.deployContract("BalanceReader", []);
  for (const p of payers) {
    await ch.fund(p.account.address, E(20_000));
    await ch.approve(p, escrow, maxUint256);
    for (const n of [ch.nodeA, ch.nodeB])
      await ch.wait(ch.as(p).escrow.write.deposit([n.account.address, START_DEPOSIT]));
  }
  for (const n of [ch.nodeA, ch.nodeB]) {
    await ch.fund(n.account.address, E(5000));
    await ch.approve(n, registry, maxUint256);
    await ch.wait(ch.as(n).nodeRegistry.write.stake([E(150), peerIdOf(n.account.address), "e"]));
  }
  // listings present from the start: 3 contributors, 64 contributors, and the first one's content listed again
  const c = contributors.map((a) => a.address);
  const start: { registrant: Wallet; content: number; who: Address[]; weights: number[] }[] = [
    { registrant: ch.adapterOwner, content: 0, who: c.slice(0, 3), weights: [3334, 3333, 3333] },
    {
      registrant: ch.adapterOwner,
      content: 1,
      who: c.slice(0, 64),
      weights: weightsOf(c.slice(0, 64).map((_, i) => ((i * 37) % 101) + 1)),
    },
    { registrant: ch.stranger, content: 0, who: [c[65]], weights: [10000] },
  ];
  const listings: ListingModel[] = [];
  for (const s of start) {
    const id = await ch.registerListing(s.registrant, contentName(s.content), s.who, s.weights);
    listings.push({
      id,
      registrant: s.registrant.account.address,
      weights: new Map(s.who.map((a, i) => [a, BigInt(s.weights[i])])),
      retired: false,
    });
  }
  holders = [
    ...new Set([
      ...ch.wallets.map((w) => w.account.address),
      ...c,
      escrow,
      registry,
      ch.deployment.contracts.AdapterRegistry,
      ch.deployment.contracts.OpenToken,
    ]),
  ];
  const balances = await readBalances();
  const deposits = new Map<string, bigint>();
  for (const p of payers)
    for (const n of [ch.nodeA, ch.nodeB]) deposits.set(pair(p.account.address, n.account.address), START_DEPOSIT);
  baseModel = {
    t: (await ch.publicClient.getBlock()).timestamp,
    tokens: new Map(holders.map((h, i) => [h, balances[i]])),
    deposits,
    withdrawals: new Map(),
    settled: new Map(),
    highest: new Map(),
    paidOnChannel: new Map(),
    pool: [],
    listings,
    accrued: new Map(),
    claimed: new Map(),
    nodes: new Map(
      [ch.nodeA, ch.nodeB].map(
        (n) => [n.account.address, { bonded: E(150), unbonding: 0n, end: 0n, floor: E(100) }] as const,
      ),
    ),
    minStake: E(100),
    unbondingPeriod: 7n * DAY,
    treasury: ch.treasury.account.address,
    fee: 500n,
    share: 2000n,
    next: null,
    delay: DAY,
    window: DAY,
  };
  base = await ch.snapshot();
});

afterAll(() => {
  console.log(
    `invariants: seed ${SEED}, ${RUNS} runs x up to ${STEPS} calls; ` +
      `outcomes ${JSON.stringify(Object.fromEntries([...outcomes].sort()))}`,
  );
});

function cloneModel(m: Model): Model {
  return {
    ...m,
    tokens: new Map(m.tokens),
    deposits: new Map(m.deposits),
    withdrawals: new Map(m.withdrawals),
    settled: new Map(m.settled),
    highest: new Map(m.highest),
    paidOnChannel: new Map(m.paidOnChannel),
    pool: [...m.pool],
    listings: m.listings.map((l) => ({ ...l })),
    accrued: new Map(m.accrued),
    claimed: new Map(m.claimed),
    nodes: new Map([...m.nodes].map(([k, v]) => [k, { ...v }])),
  };
}

async function readBalances(): Promise<bigint[]> {
  const r = (await balanceReader.read.balancesOf([ch.deployment.contracts.OpenToken, holders])) as readonly bigint[];
  return [...r];
}

/** Moves `amount` of the model's tokens from one holder to another. */
function move(m: Model, from: Address, to: Address, amount: bigint): void {
  m.tokens.set(from, get(m.tokens, from) - amount);
  m.tokens.set(to, get(m.tokens, to) + amount);
}

/** Run a transaction in a block of its own at the model's next timestamp; the receipt, or the custom error name. */
async function tx(m: Model, label: string, send: () => Promise<Hex>) {
  m.t += 1n;
  await ch.testClient.setNextBlockTimestamp({ timestamp: m.t });
  let r: { receipt: Awaited<ReturnType<Chain["wait"]>> | undefined; error: string | undefined };
  try {
    const hash = await send();
    r = { receipt: await ch.wait(hash), error: undefined };
  } catch (e) {
    const { errorName } = await revertOf(Promise.reject(e));
    r = { receipt: undefined, error: errorName };
  }
  count(`${label}:${r.error ?? "ok"}`);
  return r;
}

const feesAt = (m: Model) =>
  m.next && m.t >= m.next.at ? { fee: m.next.fee, share: m.next.share } : { fee: m.fee, share: m.share };
const canSettle = (m: Model, node: Address) => {
  const n = m.nodes.get(node);
  return n !== undefined && n.bonded !== 0n && n.bonded >= min(m.minStake, n.floor);
};
const isActive = (m: Model, node: Address) => {
  const n = m.nodes.get(node);
  return n !== undefined && n.bonded !== 0n && n.bonded >= m.minStake;
};
const listingOf = (m: Model, id: Hex) => m.listings.find((l) => l.id === id);
/** Listing `i` (modulo those known), or now and then a listing id nobody registered. */
const pickListing = (m: Model, i: number): Hex =>
  i % 11 === 10 ? unknownListing : m.listings[i % m.listings.length].id;
const due = (m: Model, id: Hex, who: Address) =>
  (get(m.accrued, id) * (listingOf(m, id)?.weights.get(who) ?? 0n)) / 10000n;

/** Time-travels so that the next call is mined at `t` (when that is still ahead); true when it did. */
async function nextCallAt(m: Model, t: bigint): Promise<boolean> {
  if (t - 1n <= m.t) return false;
  m.t = t - 1n; // tx() mines the next call one second later
  await ch.testClient.setNextBlockTimestamp({ timestamp: m.t });
  await ch.testClient.mine({ blocks: 1 });
  return true;
}

async function step(m: Model, a: Action): Promise<void> {
  switch (a.kind) {
    case "deposit": {
      const p = payers[a.payer].account.address;
      const n = nodes[a.node].account.address;
      const r = await tx(m, "deposit", () => ch.as(payers[a.payer]).escrow.write.deposit([n, a.amount]));
      expect(r.error).toBeUndefined();
      m.deposits.set(pair(p, n), get(m.deposits, pair(p, n)) + a.amount);
      move(m, p, escrow, a.amount);
      return;
    }
    case "sign": {
      const p = payers[a.payer].account.address;
      const node = nodes[a.node].account.address;
      const id = pickListing(m, a.listing);
      const key = chan(p, node, id);
      const top = get(m.highest, key);
      const cum = top + a.delta > 0n ? top + a.delta : 1n;
      const voucher: Voucher = { payer: p, node, listingId: id, cumulativeAmount: cum };
      m.pool.push({ voucher, signature: await signVoucher(payers[a.payer], voucher, ch.domain) });
      if (cum > top) m.highest.set(key, cum);
      return;
    }
    case "settle":
      return settle(m, a);
    case "claim":
      return claim(
        m,
        a.contributor,
        a.listings.map((i) => pickListing(m, i)),
      );
    case "requestWithdraw": {
      const p = payers[a.payer].account.address;
      const n = nodes[a.node].account.address;
      const bal = get(m.deposits, pair(p, n));
      const amount = ((bal === 0n ? 1n : bal) * BigInt(a.permille)) / 1000n;
      const r = await tx(m, "requestWithdraw", () => ch.as(payers[a.payer]).escrow.write.requestWithdraw([n, amount]));
      if (amount === 0n) expect(r.error).toBe("ZeroAmount");
      else if (amount > bal) expect(r.error).toBe("InsufficientBalance");
      else {
        expect(r.error).toBeUndefined();
        m.withdrawals.set(pair(p, n), { amount, at: m.t + m.delay, expires: m.t + m.delay + m.window });
      }
      return;
    }
    case "cancelWithdraw": {
      const p = payers[a.payer].account.address;
      const n = nodes[a.node].account.address;
      const r = await tx(m, "cancelWithdraw", () => ch.as(payers[a.payer]).escrow.write.cancelWithdraw([n]));
      if (!m.withdrawals.has(pair(p, n))) expect(r.error).toBe("NoWithdrawalPending");
      else {
        expect(r.error).toBeUndefined();
        m.withdrawals.delete(pair(p, n));
      }
      return;
    }
    case "withdraw": {
      const requests = [...m.withdrawals.entries()];
      if (a.pending < 0 || requests.length === 0) return withdraw(m, payers[a.payer], nodes[a.node].account.address);
      const [key, req] = requests[a.pending % requests.length];
      const [p, n] = key.split(":") as [Address, Address];
      if (a.at) await nextCallAt(m, (a.at.to === "available" ? req.at : req.expires) + a.at.offset);
      return withdraw(
        m,
        payers.find((w) => w.account.address === p)!,
        n,
      );
    }
    case "time": {
      m.t += a.seconds;
      await ch.testClient.setNextBlockTimestamp({ timestamp: m.t });
      await ch.testClient.mine({ blocks: 1 });
      return;
    }
    case "feesDue":
      if (m.next && (await nextCallAt(m, m.next.at + a.offset))) count("time:to fees due");
      return;
    case "register": {
      const who = registrants[a.registrant];
      const hash = contentHashOf(contentName(a.content));
      const id = listingIdOf(who.account.address, hash);
      const cs = a.contributors.map((i) => contributors[i].address);
      const ws = weightsOf(a.raw);
      const r = await tx(m, "register", () =>
        ch.as(who).adapterRegistry.write.register([hash, hash, 8, 1000n, "u", cs, ws]),
      );
      if (listingOf(m, id)) expect(r.error).toBe("ListingExists");
      else {
        expect(r.error).toBeUndefined();
        m.listings.push({
          id,
          registrant: who.account.address,
          weights: new Map(cs.map((c, i) => [c, BigInt(ws[i])])),
          retired: false,
        });
        count(cs.length > 32 ? "register:>32 contributors" : "register:<=32 contributors");
      }
      return;
    }
    case "retire": {
      const id = pickListing(m, a.listing);
      const l = listingOf(m, id);
      const who =
        a.caller < 0 && l
          ? registrants.find((w) => w.account.address === l.registrant)!
          : registrants[Math.max(a.caller, 0)];
      const r = await tx(m, "retire", () => ch.as(who).adapterRegistry.write.retire([id]));
      if (!l) expect(r.error).toBe("UnknownListing");
      else if (l.registrant !== who.account.address) expect(r.error).toBe("NotRegistrant");
      else if (l.retired) expect(r.error).toBe("ListingIsRetired");
      else {
        expect(r.error).toBeUndefined();
        l.retired = true;
      }
      return;
    }
    case "slash": {
      const addr = nodes[a.node].account.address;
      const n = m.nodes.get(addr)!;
      const r = await tx(m, "slash", () =>
        ch.as(ch.deployer).nodeRegistry.write.slash([addr, a.amount, keccak256(toHex("evidence"))]),
      );
      if (n.bonded + n.unbonding === 0n) expect(r.error).toBe("NotStaked");
      else {
        expect(r.error).toBeUndefined();
        const fromBonded = min(a.amount, n.bonded);
        const fromUnbonding = min(a.amount - fromBonded, n.unbonding);
        n.bonded -= fromBonded;
        n.unbonding -= fromUnbonding;
        move(m, registry, ch.treasury.account.address, fromBonded + fromUnbonding); // the registry's treasury
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
        const end = m.t + m.unbondingPeriod;
        n.end = end > n.end ? end : n.end; // never earlier than an end already set
      }
      return;
    }
    case "stake": {
      const w = nodes[a.node];
      const n = m.nodes.get(w.account.address)!;
      const r = await tx(m, "stake", () =>
        ch.as(w).nodeRegistry.write.stake([a.amount, peerIdOf(w.account.address), "e"]),
      );
      if (n.bonded + a.amount < m.minStake) expect(r.error).toBe("BelowMinStake");
      else {
        expect(r.error).toBeUndefined();
        n.bonded += a.amount;
        n.floor = m.minStake;
        move(m, w.account.address, registry, a.amount);
      }
      return;
    }
    case "withdrawStake": {
      const w = nodes[a.node];
      const n = m.nodes.get(w.account.address)!;
      if (a.atEnd !== null && n.unbonding > 0n) await nextCallAt(m, n.end + a.atEnd);
      const r = await tx(m, "withdrawStake", () => ch.as(w).nodeRegistry.write.withdrawStake());
      if (n.unbonding === 0n) expect(r.error).toBe("NothingToWithdraw");
      else if (m.t < n.end) expect(r.error).toBe("StillUnbonding");
      else {
        expect(r.error).toBeUndefined();
        move(m, registry, w.account.address, n.unbonding);
        n.unbonding = 0n;
        n.end = 0n;
      }
      return;
    }
    case "scheduleFees": {
      const r = await tx(m, "scheduleFees", () => ch.as(ch.deployer).escrow.write.scheduleFees([a.fee, a.share]));
      if (a.fee > 1000) expect(r.error).toBe("ProtocolFeeTooHigh");
      else if (a.share > 5000) expect(r.error).toBe("ContributorShareTooHigh");
      else {
        expect(r.error).toBeUndefined();
        if (m.next && m.t >= m.next.at) {
          m.fee = m.next.fee;
          m.share = m.next.share;
        }
        m.next = { fee: BigInt(a.fee), share: BigInt(a.share), at: m.t + m.delay };
      }
      return;
    }
    case "setWithdrawDelay": {
      const r = await tx(m, "setWithdrawDelay", () => ch.as(ch.deployer).escrow.write.setWithdrawDelay([a.delay]));
      if (a.delay < 3600n || a.delay > 30n * DAY) expect(r.error).toBe("DelayOutOfRange");
      else {
        expect(r.error).toBeUndefined();
        m.delay = a.delay;
      }
      return;
    }
    case "setWithdrawWindow": {
      const r = await tx(m, "setWithdrawWindow", () => ch.as(ch.deployer).escrow.write.setWithdrawWindow([a.window]));
      if (a.window < 3600n || a.window > 30n * DAY) expect(r.error).toBe("WindowOutOfRange");
      else {
        expect(r.error).toBeUndefined();
        m.window = a.window;
      }
      return;
    }
    case "setMinStake": {
      const r = await tx(m, "setMinStake", () => ch.as(ch.deployer).nodeRegistry.write.setMinStake([a.amount]));
      if (a.amount === 0n) expect(r.error).toBe("ZeroAmount");
      else {
        expect(r.error).toBeUndefined();
        m.minStake = a.amount;
      }
      return;
    }
    case "setUnbondingPeriod": {
      const r = await tx(m, "setUnbondingPeriod", () =>
        ch.as(ch.deployer).nodeRegistry.write.setUnbondingPeriod([a.period]),
      );
      if (a.period > 365n * DAY) expect(r.error).toBe("PeriodTooLong");
      else {
        expect(r.error).toBeUndefined();
        m.unbondingPeriod = a.period;
      }
      return;
    }
    case "setTreasury": {
      const to = [ch.treasury, ch.adapterOwner][a.to].account.address;
      const r = await tx(m, "setTreasury", () => ch.as(ch.deployer).escrow.write.setTreasury([to]));
      expect(r.error).toBeUndefined();
      m.treasury = to;
      return;
    }
  }
}

async function claim(m: Model, contributor: number, ids: Hex[]): Promise<void> {
  const c = contributors[contributor].address;
  let total = 0n;
  for (const id of ids) {
    const d = due(m, id, c);
    const k = `${id}:${c}`;
    if (d > get(m.claimed, k)) {
      total += d - get(m.claimed, k);
      m.claimed.set(k, d);
    }
  }
  const r = await tx(m, "claim", () => claimAs[contributor].escrow.write.claim([ids]));
  if (total === 0n) expect(r.error).toBe("NothingToClaim");
  else {
    expect(r.error).toBeUndefined();
    move(m, escrow, c, total);
  }
}

async function withdraw(m: Model, payer: Wallet, n: Address): Promise<void> {
  const p = payer.account.address;
  const req = m.withdrawals.get(pair(p, n));
  const r = await tx(m, "withdraw", () => ch.as(payer).escrow.write.withdraw([n]));
  if (!req) expect(r.error).toBe("NoWithdrawalPending");
  else if (m.t < req.at) expect(r.error).toBe("WithdrawalNotReady");
  else if (m.t >= req.expires) expect(r.error).toBe("WithdrawalLapsed");
  else {
    expect(r.error).toBeUndefined();
    const bal = get(m.deposits, pair(p, n));
    const out = min(req.amount, bal);
    m.deposits.set(pair(p, n), bal - out);
    m.withdrawals.delete(pair(p, n));
    move(m, escrow, p, out);
  }
}

async function settle(m: Model, a: Extract<Action, { kind: "settle" }>): Promise<void> {
  const caller = nodes[a.node];
  const me = caller.account.address;
  // mutate: 0 none, 1 amount tampered after signing, 2 signed for another chain, 3 signed for another contract,
  // 4 none but drawn from every node's vouchers (the others come from the caller's own that would still grow)
  const growing = m.pool.filter(
    (x) =>
      x.voucher.node === me &&
      x.voucher.cumulativeAmount > get(m.settled, chan(x.voucher.payer, x.voucher.node, x.voucher.listingId)),
  );
  const batch: { sv: SignedVoucher; validSig: boolean }[] = [];
  for (const pick of a.picks) {
    const from = pick.mutate === 4 ? m.pool : growing;
    if (from.length === 0) continue;
    const sv = from[pick.idx % from.length];
    if (from === growing) growing.splice(pick.idx % from.length, 1);
    const payerWallet = payers.find((w) => w.account.address === sv.voucher.payer)!;
    if (pick.mutate === 1) {
      const voucher = { ...sv.voucher, cumulativeAmount: sv.voucher.cumulativeAmount + 1n };
      batch.push({ sv: { voucher, signature: sv.signature }, validSig: false });
    } else if (pick.mutate === 2 || pick.mutate === 3) {
      const domain =
        pick.mutate === 2
          ? { chainId: ch.chainId + 1, verifyingContract: escrow }
          : { chainId: ch.chainId, verifyingContract: ch.deployment.contracts.AdapterRegistry };
      batch.push({
        sv: { voucher: sv.voucher, signature: await signVoucher(payerWallet, sv.voucher, domain) },
        validSig: false,
      });
    } else batch.push({ sv, validSig: true });
  }
  const r = await tx(m, "settle", () =>
    ch.as(caller).escrow.write.settle([batch.map((b) => b.sv.voucher), batch.map((b) => b.sv.signature)]),
  );
  if (!canSettle(m, me)) {
    expect(r.error).toBe("NodeCannotSettle");
    return;
  }
  expect(r.error).toBeUndefined();
  const { fee: feeBps, share: shareBps } = feesAt(m);
  const want: ({ reason: SkipReasonName } | { amount: bigint })[] = [];
  let fees = 0n;
  let toNode = 0n;
  for (const { sv, validSig } of batch) {
    const v = sv.voucher;
    const key = chan(v.payer, v.node, v.listingId);
    const done = get(m.settled, key);
    const amount = v.cumulativeAmount - done;
    const listing = listingOf(m, v.listingId);
    if (v.node !== me) want.push({ reason: "WrongNode" });
    else if (!listing) want.push({ reason: "UnknownListing" });
    else if (v.cumulativeAmount <= done) want.push({ reason: "NotGrowing" });
    else if (!validSig) want.push({ reason: "BadSignature" });
    else if (get(m.deposits, pair(v.payer, me)) < amount) want.push({ reason: "InsufficientFunds" });
    else {
      want.push({ amount });
      m.deposits.set(pair(v.payer, me), get(m.deposits, pair(v.payer, me)) - amount);
      m.settled.set(key, v.cumulativeAmount);
      m.paidOnChannel.set(key, get(m.paidOnChannel, key) + amount);
      const fee = (amount * feeBps) / 10000n;
      const share = (amount * shareBps) / 10000n;
      m.accrued.set(v.listingId, get(m.accrued, v.listingId) + share);
      fees += fee;
      toNode += amount - fee - share;
      if (listing.retired) count("settled:retired listing");
      if (!isActive(m, me)) count("settled:node under a raised minimum");
      if (m.next && m.t >= m.next.at) count("settled:scheduled fees in effect");
      if (amount <= 1000n) count("settled:wei-sized");
    }
  }
  const logs = parseEventLogs({ abi: inferenceEscrowAbi, logs: r.receipt!.logs }).filter(
    (l) => l.eventName === "VoucherSettled" || l.eventName === "VoucherSkipped",
  );
  const got = logs.map((l) =>
    l.eventName === "VoucherSkipped"
      ? { reason: skipReasonName(l.args.reason) }
      : { amount: (l.args as { amount: bigint }).amount },
  );
  expect(got).toEqual(want);
  for (const w of want) count("reason" in w ? `voucher:${w.reason}` : "voucher:Settled");
  move(m, escrow, m.treasury, fees);
  move(m, escrow, me, toNode);
  await checkState(m);
}

/** Every holder's token balance equals the model's, to the wei. */
async function checkBalances(m: Model): Promise<void> {
  const chain = await readBalances();
  const diffs = holders.flatMap((h, i) =>
    chain[i] === get(m.tokens, h) ? [] : [`${h}: chain ${chain[i]} model ${get(m.tokens, h)}`],
  );
  expect(diffs).toEqual([]);
}

/** The contracts' records against the model: deposits, requests, channels, pools, stake. */
async function checkState(m: Model): Promise<void> {
  const { escrow: e, nodeRegistry } = ch.read;
  for (const p of payers) {
    for (const n of nodes) {
      const k = pair(p.account.address, n.account.address);
      const bal = get(m.deposits, k);
      const req = m.withdrawals.get(k);
      const pending = req && m.t < req.expires ? min(req.amount, bal) : 0n;
      const [chainBal, available] = await Promise.all([
        e.read.balanceOf([p.account.address, n.account.address]),
        e.read.available([p.account.address, n.account.address]),
      ]);
      expect([chainBal, available]).toEqual([bal, bal - pending]);
    }
  }
  for (const [key, s] of m.settled) {
    const [payer, node, id] = key.split(":") as [Address, Address, Hex];
    expect(await e.read.settled([payer, node, id])).toBe(s);
    expect(s).toBeLessThanOrEqual(get(m.highest, key)); // never beyond the highest voucher signed
    expect(get(m.paidOnChannel, key)).toBe(s); // each wei of the channel paid exactly once
  }
  for (const l of m.listings) expect(await e.read.accrued([l.id])).toBe(get(m.accrued, l.id));
  let staked = 0n;
  for (const [addr, n] of m.nodes) {
    const info = await nodeRegistry.read.nodeOf([addr]);
    expect([info.stake, info.unbonding, info.unbondingEnd]).toEqual([n.bonded, n.unbonding, n.end]);
    expect(await nodeRegistry.read.canSettle([addr])).toBe(canSettle(m, addr));
    staked += n.bonded + n.unbonding;
  }
  expect(get(m.tokens, registry)).toBe(staked);
}

/** Every contributor claims everything, every payer withdraws everything; then only rounding dust is left. */
async function exit(m: Model): Promise<void> {
  for (const [i, c] of contributors.entries()) {
    const ids = m.listings
      .filter((l) => due(m, l.id, c.address) > get(m.claimed, `${l.id}:${c.address}`))
      .map((l) => l.id);
    if (ids.length === 0) continue;
    await claim(m, i, ids);
    count("exit:claim");
  }
  const open: [Wallet, Address][] = [];
  for (const p of payers) {
    for (const n of nodes) {
      const bal = get(m.deposits, pair(p.account.address, n.account.address));
      if (bal === 0n) continue;
      await step(m, { kind: "requestWithdraw", payer: payers.indexOf(p), node: nodes.indexOf(n), permille: 1000 });
      open.push([p, n.account.address]);
    }
  }
  m.t += m.delay;
  await ch.testClient.setNextBlockTimestamp({ timestamp: m.t });
  await ch.testClient.mine({ blocks: 1 });
  for (const [p, n] of open) {
    await withdraw(m, p, n);
    count("exit:withdraw");
  }
  await checkBalances(m);
  await checkState(m);
  // what stays in the escrow is the rounding dust of the pools, and nothing else
  let dust = 0n;
  for (const l of m.listings) {
    const acc = get(m.accrued, l.id);
    let claimedSum = 0n;
    for (const [c, w] of l.weights) {
      const cl = await ch.read.escrow.read.claimed([l.id, c]);
      expect(cl).toBe((acc * w) / 10000n); // claimed all of its share, and not a wei more
      claimedSum += cl;
    }
    expect(acc - claimedSum).toBeLessThan(BigInt(l.weights.size));
    dust += acc - claimedSum;
  }
  for (const v of m.deposits.values()) expect(v).toBe(0n);
  expect(await ch.tokenBalance(escrow)).toBe(dust);
  count("exit:runs");
  if (dust > 0n) count("exit:dust left");
}

describe("invariants over random call sequences", () => {
  it(
    `hold for ${RUNS} runs of up to ${STEPS} calls, ending with every party's exit`,
    { timeout: 600_000 },
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(actionArb, { minLength: Math.ceil(STEPS / 2), maxLength: STEPS, size: "max" }),
          async (actions) => {
            await ch.revertTo(base);
            base = await ch.snapshot();
            const m = cloneModel(baseModel);
            for (const a of actions) {
              await step(m, a);
              await checkBalances(m);
            }
            await exit(m);
          },
        ),
        { numRuns: RUNS, seed: SEED, endOnFailure: false },
      );
      // Each outcome that matters happened often enough: a run that never settles or claims proves nothing.
      const atLeast = (key: string, n: number) =>
        expect(outcomes.get(key) ?? 0, `${key} (seed ${SEED})`).toBeGreaterThanOrEqual(n);
      const per = (fraction: number) => Math.max(1, Math.floor(RUNS * fraction));
      atLeast("exit:runs", RUNS);
      atLeast("voucher:Settled", per(1));
      atLeast("settled:wei-sized", per(0.3));
      atLeast("settled:retired listing", per(0.05));
      atLeast("settled:node under a raised minimum", per(0.05));
      atLeast("settled:scheduled fees in effect", per(0.02));
      for (const reason of ["WrongNode", "UnknownListing", "NotGrowing", "BadSignature", "InsufficientFunds"]) {
        atLeast(`voucher:${reason}`, per(0.05));
      }
      atLeast("settle:NodeCannotSettle", per(0.1));
      atLeast("claim:ok", per(1));
      atLeast("exit:claim", per(0.5));
      atLeast("withdraw:ok", per(1));
      atLeast("withdraw:WithdrawalLapsed", per(0.02));
      atLeast("withdraw:WithdrawalNotReady", per(0.05));
      atLeast("register:>32 contributors", per(0.02));
      atLeast("register:ListingExists", per(0.05));
      atLeast("exit:dust left", per(0.1));
    },
  );
});
