// `openlora devnet --once --json`, as `npm start` runs it but exiting after the summary: a real Hardhat node in a
// child process, three paid nodes over real libp2p and HTTP on 127.0.0.1, LevelDB ledgers on disk. The test
// checks the summary's figures against each other: the chain's balances (totalsBefore/After, claims) against
// the nodes' ledgers (settled, earnings), so a wei lost or invented anywhere fails it.
//
// Then `openlora devnet` as `npm start` leaves it running: the status pages (paid mode: peers, tokens over time,
// earnings, settlements), the APIs and the chain answer; a payer can still send paid requests; Ctrl-C (SIGINT to
// the whole foreground process group, as a terminal sends it) stops the nodes, each settling what it served
// meanwhile, then the chain, and the command ends with code 0, nothing left listening.
// The two run one after the other (one file): each devnet alone keeps a loaded 2-core machine busy.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadDeployment } from "../../node/chain/index.ts";
import { PayingClient } from "../../node/client/index.ts";
import { cast } from "../../node/cli/devnet/scenario.ts";
import { Ledger } from "../../node/ledger/index.ts";
import { CLI, openlora } from "../cli/run-cli.ts";

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
    { timeout: 600_000 },
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

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** True when something answers an HTTP request at `url`. */
async function answers(url: string, init?: RequestInit): Promise<boolean> {
  try {
    await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) });
    return true;
  } catch {
    return false;
  }
}

const RPC_CHAIN_ID = {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
};

describe("openlora devnet, running on", () => {
  it(
    "serves until Ctrl-C, then settles what it served meanwhile and stops everything",
    { timeout: 600_000 },
    async () => {
      const dataDir = join(await mkdtemp(join(tmpdir(), "openlora-devnet-ctrl-c-")), "devnet");
      dirs.push(join(dataDir, ".."));
      // Its own process group, as a shell runs a foreground job: the signal below reaches the group.
      const child = spawn(process.execPath, [CLI, "devnet", "--data-dir", dataDir], {
        env: { ...process.env, NODE_NO_WARNINGS: "1" },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once("exit", (code, signal) => resolve({ code, signal })),
      );
      await new Promise<void>((resolve, reject) => {
        child.stderr.on("data", (c: Buffer) => {
          stderr += c.toString("utf8");
          if (stderr.includes("Press Ctrl-C to stop.")) resolve();
        });
        void exit.then(({ code }) => reject(new Error(`the devnet exited (${code}) before running on:\n${stderr}`)));
      });

      expect(stdout).toContain("balanced: every balance equals what the nodes' ledgers say");
      const chainPid = Number(/\(pid (\d+)\)/.exec(stderr)?.[1]);
      const rpcUrl = /Chain JSON-RPC: (\S+)/.exec(stderr)?.[1] as string;
      const pages = [...stderr.matchAll(/^ {2}(node-\d) {2}(http:\/\/127\.0\.0\.1:\d+)\/ /gm)].map((m) => ({
        name: m[1],
        url: m[2],
      }));
      expect(pages.map((p) => p.name)).toEqual(["node-1", "node-2", "node-3"]);
      expect(await answers(rpcUrl, RPC_CHAIN_ID)).toBe(true);
      for (const p of pages) {
        const page = await fetch(`${p.url}/`);
        expect(page.status, p.name).toBe(200);
        expect(await page.text()).toContain("<html");
        // What the page polls, in paid mode: the peers from gossip, tokens over time, earnings and settlements.
        const stats = (await (await fetch(`${p.url}/v1/stats`)).json()) as {
          node: { mode: string };
          peers: { local: boolean }[];
          throughput: { tokens: number[] };
          ledger: { requests: number; earned: string; settlement: { batches_confirmed: number; amount_paid: string } };
        };
        expect(stats.node.mode, p.name).toBe("paid");
        expect(
          stats.peers.filter((peer) => !peer.local),
          p.name,
        ).toHaveLength(2);
        expect(Math.max(...stats.throughput.tokens), p.name).toBeGreaterThan(0);
        expect(stats.ledger.requests, p.name).toBeGreaterThan(0);
        expect(BigInt(stats.ledger.settlement.amount_paid), p.name).toBeGreaterThanOrEqual(BigInt(stats.ledger.earned));
        expect(stats.ledger.settlement.batches_confirmed, p.name).toBeGreaterThan(0);
      }

      // A payer's request while the devnet runs on: node-3 serves it; its ledger holds it unsettled until the stop.
      const payer = cast().find((m) => m.name === "payer-1")!;
      const client = await PayingClient.create({
        rpcUrl,
        deployment: await loadDeployment(join(dataDir, "deployments"), 31337),
        account: payer.account,
        dataDir: join(dataDir, "late-payer"),
        discovery: { peersFrom: pages.map((p) => p.url) },
      });
      await client.start();
      const node3 = cast().find((m) => m.name === "node-3")!.account.address;
      const late = await client.createCompletion(
        { model: "dragon", prompt: "Once upon a time", max_tokens: 8, temperature: 0 },
        { node: node3 },
      );
      await client.stop();
      expect(late.openlora.receipt?.node).toBe(node3);

      process.kill(-child.pid!, "SIGINT");
      expect(await exit, stderr).toEqual({ code: 0, signal: null });
      expect(stderr).toContain("stopped\n");
      expect(await answers(rpcUrl, RPC_CHAIN_ID)).toBe(false);
      for (const p of pages) expect(await answers(`${p.url}/`), p.name).toBe(false);
      // The chain was the devnet's child and was waited for: no process left with its pid (a zombie would be one).
      expect(() => process.kill(chainPid, 0)).toThrow(/ESRCH/);

      // node-3 settled the late request on its way down: nothing unsettled, nothing pending.
      const ledger = await Ledger.open(join(dataDir, "node-3", "ledger"));
      try {
        expect(await ledger.unsettledChannels()).toEqual([]);
        expect(await ledger.pendingSettlements()).toEqual([]);
        const totals = await ledger.totals();
        expect(totals.all.cost).toBeGreaterThanOrEqual(late.openlora.cost);
        expect(totals.settlement.amountPaid).toBeGreaterThanOrEqual(totals.all.cost);
      } finally {
        await ledger.close();
      }
    },
  );
});
