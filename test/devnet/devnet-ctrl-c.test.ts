// `openlora devnet` as `npm start` leaves it running: the status pages, the APIs and the chain answer; a payer can
// still send paid requests; Ctrl-C (SIGINT to the whole foreground process group, as a terminal sends it) stops
// the nodes, each settling what it served meanwhile, then the chain, and the command ends with code 0, nothing
// left listening.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadDeployment } from "../../node/chain/index.ts";
import { PayingClient } from "../../node/client/index.ts";
import { cast } from "../../node/cli/devnet/scenario.ts";
import { Ledger } from "../../node/ledger/index.ts";
import { CLI } from "../cli/run-cli.ts";

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
    { timeout: 300_000 },
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
