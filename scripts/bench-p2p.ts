// Peer network figures, written to bench/p2p.json (flat object).
//   npm run bench:p2p      (= bash scripts/run.sh node scripts/bench-p2p.ts)
// - announce_p50_ms / announce_p99_ms: 20 nodes on loopback in a random graph (each dials 3 earlier ones), every
//   node announcing in turn; the time from announceNow() (building and signing included) until each of the 19
//   others has verified it (signature, stake) and stored it. All 20 nodes share this one process and its cores,
//   so every hop's verification queues behind the others': a network of separate machines does better.
// - adapter_fetch_ms: a rank-16 adapter of the 768-dim benchmark shape (12 layers, hidden 2048, all 7 targets,
//   ~11 MB canonical) fetched from a connected peer: registry check, streaming, sha256 check; median of runs.
// - infer_overhead_ms_p50: the same 16-token request through /openlora/infer/1 on an open connection minus the
//   same request on the engine directly, paired, median.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import hre from "hardhat";
import { createWalletClient, custom, getAddress, parseEther, type Hex, type LocalAccount } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { deployAll, getContracts, type ChainClients } from "../node/chain/contracts.ts";
import { createCpuBackend } from "../node/engine/backend/cpu/cpu-backend.ts";
import { loadModel } from "../node/engine/formats/load-model.ts";
import { Engine } from "../node/engine/runtime/engine.ts";
import type { EngineRequest } from "../node/engine/runtime/types.ts";
import { AdapterFetcher } from "../node/p2p/adapter-fetcher.ts";
import { serveAdapters } from "../node/p2p/adapter-protocol.ts";
import { ChainAdapterRegistry } from "../node/p2p/adapter-registry.ts";
import type { NodeState } from "../node/p2p/announcer.ts";
import { infer } from "../node/p2p/infer-client.ts";
import { PeerNode, type PeerNodeOptions } from "../node/p2p/peer-node.ts";
import { peerIdBytesHex } from "../node/p2p/stake-oracle.ts";
import { shapeConfig, SHAPES } from "./bench/model.ts";
import { randomLora } from "./bench/random-adapters.ts";
import { percentile, round } from "./bench/stats.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const NODES = 20;
const ROUNDS = 5; // every node announces this many times: 100 announcements, 1900 arrivals
const FETCH_RUNS = 7;
const INFER_RUNS = 40;
const log = (line: string): void => console.log(`[bench:p2p] ${line}`);

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "openlora-bench-p2p-"));
  const nodes: PeerNode[] = [];
  let engine: Engine | null = null;
  try {
    // ---- chain: contracts, 20 staked operators -------------------------------------------------------------
    const conn = await hre.network.create();
    const publicClient = await conn.viem.getPublicClient();
    const testClient = await conn.viem.getTestClient();
    const [deployerWallet] = await conn.viem.getWalletClients();
    const deployer = await conn.viem.getWalletClient(getAddress(deployerWallet.account.address));
    const deployment = await deployAll({ public: publicClient, wallet: deployer } as ChainClients, { minStake: parseEther("100") });
    const admin = getContracts({ public: publicClient, wallet: deployer }, deployment.contracts);
    const wait = async (hash: Promise<Hex>): Promise<void> => { await publicClient.waitForTransactionReceipt({ hash: await hash }); };
    const stake = async (operator: LocalAccount, peerId: string): Promise<void> => {
      await testClient.setBalance({ address: operator.address, value: parseEther("10") });
      const wallet = createWalletClient({ account: operator, chain: publicClient.chain, transport: custom(conn.provider) });
      const c = getContracts({ public: publicClient, wallet }, deployment.contracts);
      await wait(admin.token.write.transfer([operator.address, parseEther("100")]));
      await wait(c.token.write.approve([deployment.contracts.NodeRegistry, parseEther("100")]));
      await wait(c.nodeRegistry.write.stake([parseEther("100"), peerIdBytesHex(peerId), "http://127.0.0.1:0"]));
    };
    const base: Omit<PeerNodeOptions, "dataDir"> = {
      chain: {
        client: publicClient, chainId: deployment.chainId,
        nodeRegistry: deployment.contracts.NodeRegistry, adapterRegistry: deployment.contracts.AdapterRegistry,
      },
      colocationWhitelist: ["127.0.0.1"],
      // Announce only when told (no periodic noise between measured ones); warm caches last the whole run.
      timings: { announceIntervalMs: 3_600_000, tierPollMs: 3_600_000, minAnnounceIntervalMs: 0, stakeTtlMs: 600_000, entryTtlMs: 600_000, maxAgeMs: 600_000 },
      rate: { capacity: 1_000, refillPerSecond: 1_000 },
    };
    const staticState = (i: number): NodeState => ({
      adapters: () => [{ id: `0x${(i + 1).toString(16).padStart(64, "0")}` as Hex, tier: "gpu" }],
      load: () => ({ queueDepth: i % 3, freeSlots: 4 }),
    });

    // ---- 1. announcement propagation across 20 nodes ----------------------------------------------------------
    for (let i = 0; i < NODES; i++) {
      const operator = privateKeyToAccount(generatePrivateKey());
      const bootstrap = [...new Set(Array.from({ length: Math.min(i, 3) }, () => Math.floor(Math.random() * i)))].map((j) => nodes[j].host.dialAddrs()[0]);
      const node = await PeerNode.create({ ...base, dataDir: join(work, `node${i}`), signer: operator, state: staticState(i), bootstrap });
      nodes.push(node);
      await stake(operator, node.peerId);
      await node.start();
    }
    log(`${NODES} nodes started; waiting for every table to hold all ${NODES - 1} others`);
    const full = (): boolean => nodes.every((n) => n.table.entries().filter((e) => !e.local).length === NODES - 1);
    for (let t = 0; !full(); t++) {
      if (t % 20 === 0) await Promise.all(nodes.map((n) => n.announcer!.announceNow())); // meshes form over heartbeats
      if (t > 600) throw new Error("the 20-node network did not converge in 60 s");
      await sleep(100);
    }
    const arrivals = new Map<string, number>(); // `${receiver}|${author}|${seq}` -> performance.now()
    for (const n of nodes) {
      n.table.on("upsert", ({ entry }) => {
        if (!entry.local) arrivals.set(`${n.peerId}|${entry.peerId}|${entry.announcement.seq}`, performance.now());
      });
    }
    const latencies: number[] = [];
    let lost = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const author of nodes) {
        const t0 = performance.now();
        const a = await author.announcer!.announceNow();
        const keys = nodes.filter((n) => n !== author).map((n) => `${n.peerId}|${author.peerId}|${a.seq}`);
        const deadline = performance.now() + 2_000;
        while (keys.some((k) => !arrivals.has(k)) && performance.now() < deadline) await sleep(1);
        for (const k of keys) {
          const t1 = arrivals.get(k);
          if (t1 === undefined) lost++;
          else latencies.push(t1 - t0);
        }
        await sleep(20); // let the relays settle before the next one
      }
    }
    const drops = nodes.reduce((sum, n) => sum + Object.values(n.table.drops).reduce((a, b) => a + b, 0), 0);
    log(`announce: ${latencies.length} arrivals, ${lost} lost, ${drops} drops; p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms`);

    // ---- 2. adapter fetch: rank 16 on the 768-dim shape ------------------------------------------------------
    const shape = shapeConfig(SHAPES.default);
    const { adapter, encoded } = randomLora(shape, { rank: 16, seed: 1 });
    await wait(admin.adapterRegistry.write.register([adapter.id as Hex, `0x${"00".repeat(31)}01`, 16, "bench://768-r16", [deployer.account.address], [10_000]]));
    const holder = nodes[0];
    const asker = nodes[1];
    // The holder serves from memory; the asker's sink keeps the bytes (the engine's import, a decode and a disk
    // write, is the engine's cost, not the network's).
    await serveAdapters(holder.host, { read: async (id) => (id === adapter.id ? encoded : null) });
    const holderEntry = asker.table.get(holder.peerId)!;
    asker.table.upsert({ ...holderEntry.announcement, adapters: [{ id: adapter.id as Hex, tier: "gpu" }] }); // as if announced
    const fetchTimes: number[] = [];
    for (let run = 0; run < FETCH_RUNS; run++) {
      let stored = 0;
      const fetcher = new AdapterFetcher({
        host: asker.host, table: asker.table, model: shape, maxRank: 64,
        registry: new ChainAdapterRegistry({ client: publicClient, registry: deployment.contracts.AdapterRegistry }),
        sink: { has: () => false, add: async (bytes) => { stored = bytes.length; } },
      });
      const t0 = performance.now();
      await fetcher.ensure(adapter.id);
      fetchTimes.push(performance.now() - t0);
      if (stored !== encoded.length) throw new Error("fetched size differs");
    }
    log(`adapter fetch: ${encoded.length} bytes, runs ${fetchTimes.map((t) => t.toFixed(1)).join(", ")} ms`);

    // ---- 3. inference overhead of the stream protocol ---------------------------------------------------------
    const model = await loadModel(join(root, "models", "stories260K"));
    const backend = createCpuBackend(model.weights, { numBlocks: 64, blockSize: 16, adapterSlots: 1, maxRank: 8 });
    engine = await Engine.create({ backend, tokenizer: model.tokenizer, modelName: model.name, adapterDir: join(work, "adapters") });
    engine.start();
    const server = await PeerNode.create({ ...base, dataDir: join(work, "server"), engine });
    nodes.push(server);
    await server.start();
    const client = nodes[2];
    const target = { peerId: server.peerId, multiaddrs: server.host.multiaddrs() };
    const request: Omit<EngineRequest, "signal"> = { adapterId: null, prompt: "Once upon a time", maxTokens: 16, temperature: 0 };
    const local = async (): Promise<number> => {
      const t0 = performance.now();
      await engine!.submit(request).result;
      return performance.now() - t0;
    };
    const remote = async (): Promise<number> => {
      const t0 = performance.now();
      await infer(client.host, target, request);
      return performance.now() - t0;
    };
    for (let i = 0; i < 5; i++) { await local(); await remote(); } // warm up (JIT, connection)
    const overheads: number[] = [];
    const locals: number[] = [];
    const remotes: number[] = [];
    for (let i = 0; i < INFER_RUNS; i++) {
      // Alternate which goes first, so that neither always runs on a warmer cache.
      let l: number, r: number;
      if (i % 2 === 0) {
        l = await local();
        r = await remote();
      } else {
        r = await remote();
        l = await local();
      }
      locals.push(l);
      remotes.push(r);
      overheads.push(r - l);
    }
    log(`infer: local p50 ${percentile(locals, 50).toFixed(2)} ms, remote p50 ${percentile(remotes, 50).toFixed(2)} ms`);

    const figures = {
      announce_p50_ms: round(percentile(latencies, 50)),
      announce_p99_ms: round(percentile(latencies, 99)),
      announce_nodes: NODES,
      announce_arrivals: latencies.length,
      announce_lost: lost,
      adapter_fetch_ms: round(percentile(fetchTimes, 50)),
      adapter_fetch_bytes: encoded.length,
      adapter_fetch_mb_per_s: round(encoded.length / 1e6 / (percentile(fetchTimes, 50) / 1000)),
      infer_overhead_ms_p50: round(percentile(overheads, 50)),
      infer_local_ms_p50: round(percentile(locals, 50)),
      infer_remote_ms_p50: round(percentile(remotes, 50)),
      infer_tokens: request.maxTokens,
    };
    await mkdir(join(root, "bench"), { recursive: true });
    await writeFile(join(root, "bench", "p2p.json"), `${JSON.stringify(figures, null, 2)}\n`);
    log(`wrote bench/p2p.json: ${JSON.stringify(figures)}`);
  } finally {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await engine?.close();
    await rm(work, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

main().then(() => process.exit(0), (error: unknown) => {
  console.error(error);
  process.exit(1);
});
