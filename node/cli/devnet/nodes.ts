// One devnet node: its peer key made first (the stake binds its peer id), staked with its API URL, then the node
// service in paid mode (engine, ledger, payment gate, settlement, libp2p) and its hot adapters imported and loaded
// into GPU slots. Its log goes to a file in its data folder, so the devnet's own output stays readable.
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import type { HDAccount, Hex } from "viem";
import { jsonLogger, NodeService } from "../../api/index.ts";
import type { BackendChoice } from "../../engine/index.ts";
import { loadOrCreatePeerKey, peerIdBytesHex } from "../../p2p/index.ts";
import { stake, walletOf, type DevnetChain } from "./chain-setup.ts";
import { freePort } from "./hardhat-chain.ts";
import type { NodePlan } from "./scenario.ts";

export interface DevnetNode {
  plan: NodePlan;
  operator: HDAccount;
  service: NodeService;
  url: string;
  peerId: string;
  /** Adapters this node fetched from peers by content hash: which, and from which peer. */
  fetched: { adapter: Hex; from: string }[];
  /** Stops the node service, then closes its log. */
  stop(): Promise<void>;
}

export interface NodeStartOptions {
  dataDir: string;
  model: string;
  backend: BackendChoice;
  /** simd backend: worker threads of this node. */
  threads: number;
  stake: bigint;
  /** Multiaddrs of nodes already up. */
  bootstrap: string[];
  /** Adapter folders by name (the hot ones are imported). */
  adapterDirs: Map<string, string>;
  /** Seconds unsettled vouchers wait before the node settles on its own (the devnet also settles explicitly). */
  settleIntervalS: number;
}

export async function startNode(
  c: DevnetChain,
  plan: NodePlan,
  operator: HDAccount,
  o: NodeStartOptions,
): Promise<DevnetNode> {
  await mkdir(o.dataDir, { recursive: true });
  const peerId = peerIdFromPrivateKey(await loadOrCreatePeerKey(o.dataDir)).toString();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  await stake(c, operator, o.stake, peerIdBytesHex(peerId), url);
  const logFile = createWriteStream(join(o.dataDir, "node.log"), { flags: "a" });
  const service = await NodeService.start({
    dataDir: o.dataDir,
    model: o.model,
    backend: o.backend,
    threads: o.threads,
    api: { host: "127.0.0.1", port },
    drainMs: 2_000,
    log: jsonLogger(logFile),
    paid: {
      clients: { public: c.public, wallet: walletOf(c, operator) },
      deployment: c.deployment,
      pricePerToken: plan.pricePerToken,
      settlement: { intervalMs: o.settleIntervalS * 1000, thresholdWei: 2n ** 256n, pollMs: 500 },
      p2p: {
        publicApi: url,
        listen: ["/ip4/127.0.0.1/tcp/0"],
        bootstrap: o.bootstrap,
        colocationWhitelist: ["127.0.0.1"],
        timings: { announceIntervalMs: 2_000, minAnnounceIntervalMs: 100 },
      },
      eventPollMs: 500,
    },
  }).catch((error: unknown) => {
    logFile.end();
    throw error;
  });
  const stop = (): Promise<void> => service.stop().finally(() => logFile.end());
  try {
    for (const name of plan.hot) {
      const dir = o.adapterDirs.get(name);
      if (!dir) throw new Error(`node ${plan.name}: no adapter folder named ${name}`);
      const { id } = await service.engine.adapters.import(dir);
      await service.catalog.setAlias(name, id as Hex);
      await service.engine.adapters.load(id);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const fetched: DevnetNode["fetched"] = [];
  service.paid?.peers?.fetcher?.on("fetched", (f) => {
    if (f.from !== null) fetched.push({ adapter: f.id as Hex, from: f.from });
  });
  return { plan, operator, service, url, peerId, fetched, stop };
}

/** Multiaddrs others can dial this node at (with its /p2p/ id). */
export function dialAddrs(node: DevnetNode): string[] {
  return node.service.paid?.peers?.host.dialAddrs() ?? [];
}
