// The devnet's accounts, checked to the wei: every holder's OPEN before (after funding) and after (after claims),
// and what each balance must have become by the nodes' ledgers alone (their confirmed settlements, fee and share
// by the escrow's basis points, voucher by voucher as the contract floors them). `balanced` is true when the chain
// agrees with the ledgers for every holder, every channel and every listing's pool, and no token appeared or
// vanished. Amounts are wei as decimal strings in the JSON.
import type { Address, Hex } from "viem";
import { readContracts, type DevnetChain } from "./chain-setup.ts";
import type { DevnetNode } from "./nodes.ts";
import type { CastMember } from "./scenario.ts";
import type { ListedAdapter, ServedRequest } from "./traffic.ts";

export interface Holder {
  name: string;
  role: string;
  address: Address;
}

export interface Contribution {
  adapter: ListedAdapter;
  contributor: CastMember;
  weightBps: number;
}

export interface Ledgers {
  /** Per node: wei paid per confirmed voucher, with its channel. */
  paid: { node: DevnetNode; payer: Address; listingId: Hex; amount: bigint }[];
}

const BPS = 10_000n;

export async function readBalances(c: DevnetChain, holders: Holder[]): Promise<Map<Address, bigint>> {
  const token = readContracts(c).token;
  const balances = await Promise.all(holders.map((h) => token.read.balanceOf([h.address])));
  return new Map(holders.map((h, i) => [h.address, balances[i]]));
}

/** Every voucher the nodes' ledgers record as paid on chain. */
export async function readLedgers(nodes: DevnetNode[]): Promise<Ledgers> {
  const paid: Ledgers["paid"] = [];
  for (const node of nodes) {
    for await (const batch of node.service.ledger.settlements()) {
      if (batch.status !== "confirmed" || !batch.outcomes) continue;
      batch.outcomes.forEach((outcome, i) => {
        if (outcome.status !== "paid") return;
        const v = batch.vouchers[i];
        paid.push({ node, payer: v.payer, listingId: v.listingId, amount: outcome.amount });
      });
    }
  }
  return { paid };
}

export interface SummaryInput {
  chain: DevnetChain;
  rpcUrl: string;
  cast: CastMember[];
  nodes: DevnetNode[];
  adapters: ListedAdapter[];
  contributions: Contribution[];
  served: ServedRequest[];
  holders: Holder[];
  before: Map<Address, bigint>;
  stake: bigint;
  deposit: bigint;
  seconds: number;
}

export async function summarize(input: SummaryInput) {
  const { chain: c, nodes, adapters, contributions, served, holders, before } = input;
  const escrow = readContracts(c).escrow;
  const [feeBps, shareBps] = (await Promise.all([escrow.read.protocolFeeBps(), escrow.read.contributorShareBps()])).map(
    BigInt,
  );
  const ledgers = await readLedgers(nodes);
  const after = await readBalances(c, holders);
  const problems: string[] = [];
  const check = (what: string, expected: bigint, actual: bigint): void => {
    if (expected !== actual) problems.push(`${what}: the ledgers say ${expected}, the chain ${actual}`);
  };

  // What the ledgers say each holder's balance must have moved by.
  const expected = new Map<Address, bigint>(holders.map((h) => [h.address, 0n]));
  const move = (address: Address, amount: bigint): void => {
    expected.set(address, (expected.get(address) ?? 0n) + amount);
  };
  const { NodeRegistry, InferenceEscrow } = c.deployment.contracts;
  const treasury = c.deployment.params.treasury;
  const pool = new Map<Hex, bigint>();
  const toNode = new Map<DevnetNode, bigint>();
  for (const node of nodes) {
    move(node.operator.address, -input.stake);
    move(NodeRegistry, input.stake);
  }
  for (const payer of input.cast.filter((m) => m.role === "payer")) {
    const total = input.deposit * BigInt(nodes.length);
    move(payer.account.address, -total);
    move(InferenceEscrow, total);
  }
  for (const p of ledgers.paid) {
    const fee = (p.amount * feeBps) / BPS;
    const share = (p.amount * shareBps) / BPS;
    move(treasury, fee);
    move(p.node.operator.address, p.amount - fee - share);
    move(InferenceEscrow, -(p.amount - share));
    pool.set(p.listingId, (pool.get(p.listingId) ?? 0n) + share);
    toNode.set(p.node, (toNode.get(p.node) ?? 0n) + p.amount - fee - share);
  }

  const contributors = await Promise.all(
    contributions.map(async ({ adapter, contributor, weightBps }) => {
      const address = contributor.account.address;
      const owed = ((pool.get(adapter.listingId) ?? 0n) * BigInt(weightBps)) / BPS;
      const claimed = await escrow.read.claimed([adapter.listingId, address]);
      move(address, owed);
      move(InferenceEscrow, -owed);
      check(`${contributor.name}'s claim on ${adapter.name}`, owed, claimed);
      return {
        name: contributor.name,
        address,
        adapter: adapter.name,
        adapterId: adapter.contentHash,
        listingId: adapter.listingId,
        weightBps,
        expected: owed,
        claimed,
      };
    }),
  );

  // Every channel's settled mark and every listing's pool, ledger against chain.
  const channels = new Map<string, { node: DevnetNode; payer: Address; listingId: Hex; amount: bigint }>();
  for (const p of ledgers.paid) {
    const key = `${p.node.plan.name}|${p.payer}|${p.listingId}`;
    const entry = channels.get(key) ?? { ...p, amount: 0n };
    entry.amount += p.amount;
    channels.set(key, entry);
  }
  for (const ch of channels.values()) {
    const onChain = await escrow.read.settled([ch.payer, ch.node.operator.address, ch.listingId]);
    check(`settled on channel ${ch.node.plan.name}/${ch.payer}/${ch.listingId}`, ch.amount, onChain);
  }
  for (const a of adapters)
    check(`${a.name}'s pool`, pool.get(a.listingId) ?? 0n, await escrow.read.accrued([a.listingId]));
  for (const h of holders) {
    check(
      `${h.name}'s balance`,
      (before.get(h.address) ?? 0n) + (expected.get(h.address) ?? 0n),
      after.get(h.address) ?? 0n,
    );
  }
  const sum = (m: Map<Address, bigint>): bigint => [...m.values()].reduce((a, b) => a + b, 0n);
  check("all holders together", sum(before), sum(after));

  const nameOfPeer = (peerId: string): string => nodes.find((n) => n.peerId === peerId)?.plan.name ?? peerId;
  const nameOfAdapter = (id: Hex): string => adapters.find((a) => a.contentHash === id)?.name ?? id;
  const totals = (m: Map<Address, bigint>) => holders.map((h) => ({ ...h, balance: m.get(h.address) ?? 0n }));
  return {
    rpcUrl: input.rpcUrl,
    chainId: c.deployment.chainId,
    contracts: c.deployment.contracts,
    seconds: input.seconds,
    fees: { protocolFeeBps: Number(feeBps), contributorShareBps: Number(shareBps) },
    funding: { stakePerNode: input.stake, depositPerPayerAndNode: input.deposit },
    nodes: await Promise.all(
      nodes.map(async (node) => {
        const t = await node.service.ledger.totals();
        return {
          name: node.plan.name,
          operator: node.operator.address,
          url: node.url,
          statusPage: `${node.url}/`,
          peerId: node.peerId,
          pricePerToken: node.plan.pricePerToken,
          hot: node.plan.hot,
          requests: t.all.requests,
          promptTokens: t.all.promptTokens,
          completionTokens: t.all.completionTokens,
          billed: t.all.cost,
          settled: t.settlement.amountPaid,
          earnings: toNode.get(node) ?? 0n,
          fetched: node.fetched.map((f) => ({ adapter: nameOfAdapter(f.adapter), from: nameOfPeer(f.from) })),
        };
      }),
    ),
    adapters: adapters.map((a) => {
      const mine = served.filter((s) => s.adapter === a.name);
      const accrued = pool.get(a.listingId) ?? 0n;
      const paidOut = contributors.filter((k) => k.listingId === a.listingId).reduce((s, k) => s + k.claimed, 0n);
      return {
        name: a.name,
        adapterId: a.contentHash,
        listingId: a.listingId,
        requests: mine.length,
        servedBy: [...new Set(mine.map((s) => s.node))].sort(),
        promptTokens: mine.reduce((s, r) => s + r.promptTokens, 0),
        completionTokens: mine.reduce((s, r) => s + r.completionTokens, 0),
        billed: mine.reduce((s, r) => s + r.cost, 0n),
        settled: ledgers.paid.filter((p) => p.listingId === a.listingId).reduce((s, p) => s + p.amount, 0n),
        pool: accrued,
        paidOut,
        dust: accrued - paidOut,
      };
    }),
    contributors,
    totalsBefore: totals(before),
    totalsAfter: totals(after),
    problems,
    balanced: problems.length === 0,
  };
}

export type DevnetSummary = Awaited<ReturnType<typeof summarize>>;

/** The summary as JSON text: bigints (wei) as decimal strings. */
export function summaryJson(summary: DevnetSummary): string {
  return JSON.stringify(summary, (_, v) => (typeof v === "bigint" ? v.toString() : v));
}
