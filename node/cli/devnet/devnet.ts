// The devnet, start to finish: a Hardhat chain, the contracts, OPEN handed out, the three demo adapters listed
// with their contributor splits, three staked nodes on the embedded model (different adapters hot, one with none),
// gossip, paid requests from two payers, settlement, every contributor's claim, and the summary that checks every
// balance against the nodes' ledgers. The chain and the nodes stay up until stop().
import { availableParallelism } from "node:os";
import { basename, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Address } from "viem";
import {
  adapterFacts,
  claimRewards,
  depositFor,
  PayingClient,
  registerListing,
  rewardsOf,
} from "../../client/index.ts";
import type { BackendChoice } from "../../engine/index.ts";
import { clientsOf, deployContracts, fund, type DevnetChain } from "./chain-setup.ts";
import { PROJECT_ROOT, startHardhatChain, type HardhatChain } from "./hardhat-chain.ts";
import { dialAddrs, startNode, type DevnetNode } from "./nodes.ts";
import { ADAPTERS, cast, FUNDING, NODES, requestPlan, type CastMember } from "./scenario.ts";
import { readBalances, summarize, type Contribution, type DevnetSummary, type Holder } from "./summary.ts";
import { runTraffic, type ListedAdapter } from "./traffic.ts";

/** How long stop() lets the nodes settle before stopping them anyway. */
const SETTLE_ON_STOP_MS = 15_000;

export interface DevnetOptions {
  /** Holds each node's data folder and the deployment file. */
  dataDir: string;
  backend: BackendChoice;
  /** Model folder with an adapters/ folder holding the demo adapters. Default models/stories260K. */
  model?: string;
  /** The chain's RPC port; default a free one. */
  rpcPort?: number;
  /** Seconds unsettled vouchers wait before a node settles on its own, once the devnet runs on. */
  settleIntervalS?: number;
  /** One line per stage, for a person watching. */
  progress?: (line: string) => void;
}

export interface Devnet {
  rpcUrl: string;
  /** Folder holding <chainId>.json, for the other openlora commands (--deployment). */
  deploymentsDir: string;
  nodes: DevnetNode[];
  summary: DevnetSummary;
  /** Settles what the nodes served, stops them, then the chain. Idempotent. */
  stop(): Promise<void>;
}

export async function startDevnet(o: DevnetOptions): Promise<Devnet> {
  const started = performance.now();
  const say = o.progress ?? (() => {});
  const stage = (what: string): void => say(`[devnet ${((performance.now() - started) / 1000).toFixed(1)} s] ${what}`);
  const model = resolve(o.model ?? join(PROJECT_ROOT, "models/stories260K"));
  const dataDir = resolve(o.dataDir);
  const deploymentsDir = join(dataDir, "deployments");
  const nodes: DevnetNode[] = [];
  const clients = new Map<string, PayingClient>();
  let hardhat: HardhatChain | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await Promise.allSettled([...clients.values()].map((client) => client.stop()));
      // What the nodes served since the summary is settled and confirmed while the chain is up, so that ledgers and
      // chain agree at the end (a node's own stop sends its last batch but cannot wait for it to be mined).
      await Promise.race([
        Promise.allSettled(nodes.map((n) => settleAll(n))),
        sleep(SETTLE_ON_STOP_MS, undefined, { ref: false }),
      ]);
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await hardhat?.stop();
    })();
    return stopping;
  };
  try {
    hardhat = await startHardhatChain({ port: o.rpcPort });
    stage(`chain up: Hardhat node at ${hardhat.rpcUrl} (pid ${hardhat.pid})`);
    const members = cast();
    const one = (name: string): CastMember => members.find((m) => m.name === name) as CastMember;
    const deployer = one("deployer");
    const c = await deployContracts(hardhat.rpcUrl, deployer.account, deploymentsDir);
    stage(`contracts deployed (chain ${c.deployment.chainId}); deployment in ${deploymentsDir}`);

    const payers = members.filter((m) => m.role === "payer");
    const operators = members.filter((m) => m.role === "operator");
    await fund(c, deployer.account, [
      ...payers.map((p): [Address, bigint] => [p.account.address, FUNDING.payer]),
      ...operators.map((p): [Address, bigint] => [p.account.address, FUNDING.operator]),
    ]);
    const holders: Holder[] = [
      ...members.map((m) => ({ name: m.name, role: m.role, address: m.account.address })),
      { name: "NodeRegistry", role: "contract", address: c.deployment.contracts.NodeRegistry },
      { name: "InferenceEscrow", role: "contract", address: c.deployment.contracts.InferenceEscrow },
    ];
    const before = await readBalances(c, holders);
    stage(`funded ${payers.length} payers and ${operators.length} operators`);

    const { adapters, contributions, adapterDirs } = await listAdapters(c, model, one);
    stage(`listed ${adapters.map((a) => `${a.name} ${a.listingId.slice(0, 10)}`).join(", ")}`);

    for (const payer of payers) {
      for (const op of operators)
        await depositFor(clientsOf(c, payer.account), c.deployment, op.account.address, FUNDING.deposit);
    }
    stage(`each payer deposited ${FUNDING.deposit} wei for each node`);

    const nodeOptions = (name: string, bootstrap: string[]) => ({
      dataDir: join(dataDir, name),
      model,
      backend: o.backend,
      // The nodes share this machine's cores: a worker pool of its share each, so their threads do not outnumber the
      // cores (at least one each).
      threads: Math.max(1, Math.floor(availableParallelism() / NODES.length)),
      stake: FUNDING.stake,
      bootstrap,
      adapterDirs,
      settleIntervalS: o.settleIntervalS ?? 30,
    });
    const [first, ...rest] = NODES;
    nodes.push(await startNode(c, first, one(first.name).account, nodeOptions(first.name, [])));
    const bootstrap = dialAddrs(nodes[0]);
    nodes.push(
      ...(await Promise.all(
        rest.map((plan) => startNode(c, plan, one(plan.name).account, nodeOptions(plan.name, bootstrap))),
      )),
    );
    for (const n of nodes) {
      stage(
        `${n.plan.name} staked and serving at ${n.url} on ${n.service.engine.device.kind} (hot: ${n.plan.hot.join(", ") || "none"})`,
      );
    }
    await gossiped(nodes);
    stage("every node sees every other's announcement");

    for (const p of payers) {
      const client = await PayingClient.create({
        rpcUrl: c.rpcUrl,
        deployment: c.deployment,
        account: p.account,
        dataDir: join(dataDir, "payers", p.name),
        discovery: { peersFrom: nodes.map((n) => n.url) },
      });
      await client.start();
      clients.set(p.name, client);
    }
    const served = await runTraffic(requestPlan(), clients, nodes, new Map(adapters.map((a) => [a.name, a])));
    stage(`${served.length} paid requests served (${served.filter((s) => !s.routed).length} sent to a chosen node)`);

    for (const node of nodes) await settleAll(node);
    stage("every node settled its vouchers");
    await claimAll(c, contributions);
    stage("every contributor claimed");

    const summary = await summarize({
      chain: c,
      rpcUrl: hardhat.rpcUrl,
      cast: members,
      nodes,
      adapters,
      contributions,
      served,
      holders,
      before,
      stake: FUNDING.stake,
      deposit: FUNDING.deposit,
      seconds: Math.round((performance.now() - started) / 100) / 10,
    });
    return { rpcUrl: hardhat.rpcUrl, deploymentsDir, nodes, summary, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Reads each demo adapter (content hash, rank, size) and lists it as the registrant with its contributor split. */
async function listAdapters(c: DevnetChain, model: string, one: (name: string) => CastMember) {
  const registrant = clientsOf(c, one("registrant").account);
  const adapters: ListedAdapter[] = [];
  const contributions: Contribution[] = [];
  const adapterDirs = new Map<string, string>();
  for (const plan of ADAPTERS) {
    const dir = join(model, "adapters", plan.name);
    adapterDirs.set(plan.name, dir);
    const facts = await adapterFacts(dir);
    const attribution = plan.split.map(([name, weightBps]) => ({ contributor: one(name).account.address, weightBps }));
    const uri = `openlora://${basename(model)}/${plan.name}`;
    const { listingId } = await registerListing(registrant, c.deployment, facts, attribution, uri);
    const listed = { name: plan.name, contentHash: facts.contentHash, listingId };
    adapters.push(listed);
    for (const [name, weightBps] of plan.split)
      contributions.push({ adapter: listed, contributor: one(name), weightBps });
  }
  return { adapters, contributions, adapterDirs };
}

/** Waits until every node's peer table holds every node's announcement (its own included). */
async function gossiped(nodes: DevnetNode[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  const seen = (n: DevnetNode): number => n.service.paid?.peers?.table.entries().length ?? 0;
  while (nodes.some((n) => seen(n) < nodes.length)) {
    if (Date.now() > deadline) {
      throw new Error(
        `gossip: after 60 s the nodes see ${nodes.map(seen).join(", ")} of ${nodes.length} announcements`,
      );
    }
    await sleep(50);
  }
}

/** Settles until the node's ledger has nothing unsettled and no batch pending. */
async function settleAll(node: DevnetNode): Promise<void> {
  const job = node.service.paid?.settlement;
  const ledger = node.service.ledger;
  if (!job) throw new Error(`${node.plan.name} is not in paid mode`);
  for (let pass = 0; pass < 50; pass++) {
    await job.settleNow();
    const [unsettled, pending] = await Promise.all([ledger.unsettledChannels(), ledger.pendingSettlements()]);
    if (unsettled.length === 0 && pending.length === 0) return;
    const skipped = unsettled.filter((ch) => ch.lastSkip !== null);
    if (pending.length === 0 && skipped.length === unsettled.length) {
      const reasons = skipped.map((ch) => `${ch.payer}/${ch.listingId}: ${ch.lastSkip?.reason}`).join("; ");
      throw new Error(`${node.plan.name}: the escrow skipped vouchers (${reasons})`);
    }
    await sleep(50);
  }
  throw new Error(`${node.plan.name}: vouchers still unsettled after 50 settlement passes`);
}

/** Each contributor claims, in one transaction, what every listing it contributed to owes it (as `openlora rewards
 * --claim` does). */
async function claimAll(c: DevnetChain, contributions: Contribution[]): Promise<void> {
  for (const contributor of new Set(contributions.map((k) => k.contributor))) {
    const address = contributor.account.address;
    const owed = (await rewardsOf(c.public, c.deployment, address)).filter((line) => line.claimable > 0n);
    if (owed.length === 0) continue;
    await claimRewards(
      clientsOf(c, contributor.account),
      c.deployment,
      owed.map((line) => line.listingId),
    );
  }
}
