// `openlora devnet --once --json`, as `npm start` runs it but exiting after the summary: a real Hardhat node in a
// child process, three paid nodes over real libp2p and HTTP on 127.0.0.1, LevelDB ledgers on disk. The test
// checks the summary's figures against each other: the chain's balances (totalsBefore/After, claims) against
// the nodes' ledgers (settled, earnings), so a wei lost or invented anywhere fails it.
import { describe, expect, it } from "vitest";
import { openlora } from "../cli/run-cli.ts";

interface Summary {
  fees: { protocolFeeBps: number; contributorShareBps: number };
  funding: { stakePerNode: string; depositPerPayerAndNode: string };
  nodes: {
    name: string;
    operator: string;
    hot: string[];
    requests: number;
    completionTokens: number;
    settled: string;
    earnings: string;
    fetched: { adapter: string; from: string }[];
  }[];
  adapters: {
    name: string;
    listingId: string;
    requests: number;
    settled: string;
    pool: string;
    paidOut: string;
    dust: string;
  }[];
  contributors: {
    address: string;
    adapter: string;
    adapterId: string;
    listingId: string;
    weightBps: number;
    expected: string;
    claimed: string;
  }[];
  totalsBefore: { name: string; role: string; address: string; balance: string }[];
  totalsAfter: { name: string; role: string; address: string; balance: string }[];
  balanced: boolean;
  problems: string[];
}

const sum = (values: bigint[]): bigint => values.reduce((a, b) => a + b, 0n);

describe("openlora devnet --once --json", () => {
  it(
    "serves every adapter, fetches across nodes, settles, and every wei is where the ledgers say",
    { timeout: 300_000 },
    async () => {
      const run = await openlora("devnet", "--once", "--json");
      expect(run.stderr).toContain("every contributor claimed");
      expect(run.code, run.stderr).toBe(0);
      const s = JSON.parse(run.stdout) as Summary;
      expect(s.problems).toEqual([]);
      expect(s.balanced).toBe(true);

      // Every adapter served, and paid for on chain.
      expect(s.adapters.map((a) => a.name).sort()).toEqual(["dragon", "ocean", "robot"]);
      for (const a of s.adapters) {
        expect(a.requests, a.name).toBeGreaterThan(0);
        expect(BigInt(a.settled), a.name).toBeGreaterThan(0n);
      }
      // At least one node served an adapter it did not hold, fetched from a peer that did.
      const fetches = s.nodes.flatMap((n) => n.fetched.map((f) => ({ node: n, ...f })));
      expect(fetches.length).toBeGreaterThan(0);
      for (const f of fetches) {
        expect(f.node.hot).not.toContain(f.adapter);
        expect(s.nodes.find((n) => n.name === f.from)?.hot).toContain(f.adapter);
      }
      expect(s.nodes.every((n) => n.requests > 0 && n.completionTokens > 0)).toBe(true);

      // Each listing's pool is the contributor share of what was settled for it (floored per voucher, so at most
      // one wei per voucher below the share of the sum); each contributor claimed exactly floor(pool x weight /
      // 10000), and what is left in the pool (the dust) is under one wei per contributor.
      const shareBps = BigInt(s.fees.contributorShareBps);
      for (const a of s.adapters) {
        const pool = BigInt(a.pool);
        expect(pool).toBeLessThanOrEqual((BigInt(a.settled) * shareBps) / 10_000n);
        expect(pool).toBeGreaterThan((BigInt(a.settled) * shareBps) / 10_000n - BigInt(a.requests) - 1n);
        const mine = s.contributors.filter((k) => k.listingId === a.listingId);
        expect(sum(mine.map((k) => BigInt(k.weightBps)))).toBe(10_000n);
        for (const k of mine) {
          expect(BigInt(k.expected)).toBe((pool * BigInt(k.weightBps)) / 10_000n);
          expect(BigInt(k.claimed)).toBe(BigInt(k.expected));
        }
        const claimed = sum(mine.map((k) => BigInt(k.claimed)));
        expect(BigInt(a.paidOut)).toBe(claimed);
        expect(BigInt(a.dust)).toBe(pool - claimed);
        expect(BigInt(a.dust)).toBeLessThan(BigInt(mine.length));
      }
      expect(
        new Set(s.adapters.map((a) => s.contributors.filter((k) => k.listingId === a.listingId).length)).size,
      ).toBe(3);

      // On-chain balances against the ledgers' figures.
      const before = new Map(s.totalsBefore.map((h) => [h.address, BigInt(h.balance)]));
      const after = new Map(s.totalsAfter.map((h) => [h.address, BigInt(h.balance)]));
      const delta = (address: string): bigint => (after.get(address) ?? 0n) - (before.get(address) ?? 0n);
      const holder = (name: string) => s.totalsBefore.find((h) => h.name === name)!;
      expect(sum([...after.values()])).toBe(sum([...before.values()]));
      const stake = BigInt(s.funding.stakePerNode);
      const depositEach = BigInt(s.funding.depositPerPayerAndNode);
      for (const n of s.nodes) expect(delta(n.operator), n.name).toBe(BigInt(n.earnings) - stake);
      expect(delta(holder("NodeRegistry").address)).toBe(stake * BigInt(s.nodes.length));
      const payers = s.totalsBefore.filter((h) => h.role === "payer");
      for (const p of payers) expect(delta(p.address), p.name).toBe(-depositEach * BigInt(s.nodes.length));
      for (const c of s.totalsBefore.filter((h) => h.role === "contributor")) {
        const claims = s.contributors.filter((k) => k.address === c.address).map((k) => BigInt(k.claimed));
        expect(delta(c.address), c.name).toBe(sum(claims));
      }
      // What the nodes' ledgers settled went to the treasury (fees), the nodes and the pools, and nowhere else.
      const settled = sum(s.nodes.map((n) => BigInt(n.settled)));
      expect(settled).toBe(sum(s.adapters.map((a) => BigInt(a.settled))));
      const pools = sum(s.adapters.map((a) => BigInt(a.pool)));
      const earnings = sum(s.nodes.map((n) => BigInt(n.earnings)));
      expect(delta(holder("deployer").address)).toBe(settled - earnings - pools);
      const deposits = depositEach * BigInt(payers.length * s.nodes.length);
      const dust = sum(s.adapters.map((a) => BigInt(a.dust)));
      expect(delta(holder("InferenceEscrow").address)).toBe(deposits - settled + dust);
    },
  );
});
