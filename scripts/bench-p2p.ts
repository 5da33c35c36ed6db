// Peer network figures, written to bench/p2p.json (flat object).
//   npm run bench:p2p      (= bash scripts/run.sh node scripts/bench-p2p.ts)
// Real PeerNodes on 127.0.0.1, stakes and adapters checked against Hardhat's in-process chain, all in this one
// process. One process means one thread for every node: each hop's checks wait for the other nodes' work, which
// separate machines would do in parallel. (Nodes in worker threads measured worse on 2 cores: 20 threads
// thrash.) So the announcement figures are an upper bound for 20 real machines.
// - announce_p50_ms / announce_p99_ms: 20 nodes in a random graph (each dials up to 3 earlier ones); each node
//   announces in turn, 5 rounds; the time from announceNow() (building and EIP-712 signing included) until each
//   of the 19 others has verified it (operator signature, stake from the cache) and stored it: 1900 arrivals.
//   announce_verify_ms_p50 is one node's work per announcement (a hop on separate machines costs that plus
//   a round trip).
// - adapter_fetch_ms: a rank-16 adapter of the 768-dim benchmark shape (12 layers, hidden 2048, all 7 targets:
//   11.2 MB canonical) from a connected peer: registry check, noise-encrypted stream, sha256 check. Median of
//   runs (and the fastest: this machine is shared, the spread is wide); the engine's own import (decode, disk
//   write) is not counted.
// - infer_overhead_ms_p50: a 16-token greedy request through /openlora/infer/1 on an open connection minus the
//   same request submitted to the engine directly; paired runs (alternating order), median of the differences.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import hre from "hardhat";
import { createWalletClient, custom, getAddress, parseEther, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { deployAll, getContracts } from "../node/chain/contracts.ts";
import { createCpuBackend } from "../node/engine/backend/cpu/cpu-backend.ts";
import { loadModel } from "../node/engine/formats/load-model.ts";
import { Engine } from "../node/engine/runtime/engine.ts";
import type { EngineRequest } from "../node/engine/runtime/types.ts";
import { AdapterFetcher } from "../node/p2p/adapter-fetcher.ts";
import { serveAdapters } from "../node/p2p/adapter-protocol.ts";
import { ChainAdapterRegistry } from "../node/p2p/adapter-registry.ts";
import { AnnouncementValidator } from "../node/p2p/announce-validator.ts";
import { encodeAnnouncement, type AdapterAvailability } from "../node/p2p/announcement.ts";
import { infer } from "../node/p2p/infer-client.ts";
import { PeerNode, type PeerNodeOptions } from "../node/p2p/peer-node.ts";
import { PeerTable } from "../node/p2p/peer-table.ts";
import { peerIdBytesHex } from "../node/p2p/stake-oracle.ts";
import { shapeConfig, SHAPES } from "./bench/model.ts";
import { randomLora } from "./bench/random-adapters.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const NODES = Number(process.env.BENCH_P2P_NODES ?? 20); // fewer for a quick look
const ROUNDS = 5;
const FETCH_RUNS = 9;
const INFER_RUNS = 40;
const log = (line: string): void => console.log(`[bench:p2p] ${line}`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The p-th percentile (0..100), nearest rank. */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** 3 significant digits. */
function round(value: number): number {
  return Number.isInteger(value) ? value : Number(value.toPrecision(3));
}

/** A full garbage collection between phases, so that one phase's garbage is not charged to the next. */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "openlora-bench-p2p-"));
  const running: PeerNode[] = [];
  let engine: Engine | null = null;
  try {
    // ---- the chain: contracts deployed; operators staked as nodes come up ----------------------------------
    const conn = await hre.network.create();
    const publicClient = await conn.viem.getPublicClient();
    const testClient = await conn.viem.getTestClient();
    const [first] = await conn.viem.getWalletClients();
    const deployer = await conn.viem.getWalletClient(getAddress(first.account.address));
    const deployment = await deployAll({ public: publicClient, wallet: deployer }, { minStake: parseEther("100") });
    const admin = getContracts({ public: publicClient, wallet: deployer }, deployment.contracts);
    const wait = async (hash: Promise<Hex>): Promise<void> => {
      await publicClient.waitForTransactionReceipt({ hash: await hash });
    };
    const options = (name: string, extra: Partial<PeerNodeOptions>): PeerNodeOptions => ({
      dataDir: join(work, name),
      chain: {
        client: publicClient,
        chainId: deployment.chainId,
        nodeRegistry: deployment.contracts.NodeRegistry,
        adapterRegistry: deployment.contracts.AdapterRegistry,
      },
      colocationWhitelist: ["127.0.0.1"],
      // Announce only when told (no periodic traffic between measured ones); caches stay warm all run long.
      timings: {
        announceIntervalMs: 3_600_000,
        minAnnounceIntervalMs: 0,
        stakeTtlMs: 600_000,
        entryTtlMs: 600_000,
        maxAgeMs: 600_000,
      },
      rate: { capacity: 1_000, refillPerSecond: 1_000 },
      ...extra,
    });
    /** Creates a node with a fresh operator, stakes it bound to the node's peer id, starts it. */
    const stakedNode = async (
      name: string,
      extra: Partial<PeerNodeOptions>,
      bootstrap: string[],
    ): Promise<PeerNode> => {
      const operator = privateKeyToAccount(generatePrivateKey());
      const node = await PeerNode.create(options(name, { signer: operator, bootstrap, ...extra }));
      running.push(node);
      await testClient.setBalance({ address: operator.address, value: parseEther("10") });
      const wallet = createWalletClient({
        account: operator,
        chain: publicClient.chain,
        transport: custom(conn.provider),
      });
      const c = getContracts({ public: publicClient, wallet }, deployment.contracts);
      await wait(admin.token.write.transfer([operator.address, parseEther("100")]));
      await wait(c.token.write.approve([deployment.contracts.NodeRegistry, parseEther("100")]));
      await wait(c.nodeRegistry.write.stake([parseEther("100"), peerIdBytesHex(node.peerId), "http://127.0.0.1:0"]));
      await node.start();
      return node;
    };
    const stopAll = async (): Promise<void> => {
      await Promise.all(running.splice(0).map((n) => n.stop()));
    };

    // ---- 1. announcement propagation across 20 nodes -------------------------------------------------------
    const nodes: PeerNode[] = [];
    for (let i = 0; i < NODES; i++) {
      const links = [...new Set(Array.from({ length: Math.min(i, 3) }, () => Math.floor(Math.random() * i)))];
      const adapters: AdapterAvailability[] = [{ id: `0x${(i + 1).toString(16).padStart(64, "0")}`, tier: "gpu" }];
      nodes.push(
        await stakedNode(
          `node${i}`,
          { state: { adapters: () => adapters, load: () => ({ queueDepth: i % 3, freeSlots: 4 }) } },
          links.map((j) => nodes[j].host.dialAddrs()[0]),
        ),
      );
    }
    log(`${NODES} nodes started; waiting until every table holds the ${NODES - 1} others`);
    const converged = (): boolean => nodes.every((n) => n.table.entries().filter((e) => !e.local).length === NODES - 1);
    for (let t = 0; !converged(); t++) {
      if (t > 600) throw new Error("the network did not converge in 60 s");
      if (t % 20 === 0) await Promise.all(nodes.map((n) => n.announcer!.announceNow())); // meshes form over heartbeats
      await sleep(100);
    }
    await sleep(2_000); // a couple of heartbeats: meshes settle
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
        const { seq } = await author.announcer!.announceNow();
        const keys = nodes.filter((n) => n !== author).map((n) => `${n.peerId}|${author.peerId}|${seq}`);
        const deadline = performance.now() + 3_000;
        while (keys.some((k) => !arrivals.has(k)) && performance.now() < deadline) await sleep(1);
        for (const k of keys) {
          const t1 = arrivals.get(k);
          if (t1 === undefined) lost++;
          else latencies.push(t1 - t0);
        }
        await sleep(30); // the relays go quiet before the next one
      }
    }
    const drops: Record<string, number> = {};
    for (const n of nodes)
      for (const [reason, count] of Object.entries(n.table.drops))
        if (count) drops[reason] = (drops[reason] ?? 0) + count;
    log(
      `announce: ${latencies.length} arrivals, ${lost} lost, drops ${JSON.stringify(drops)}; p50 ${percentile(latencies, 50).toFixed(2)} ms, p90 ${percentile(latencies, 90).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, max ${Math.max(...latencies).toFixed(2)} ms`,
    );
    // The work one node does per announcement (decode, EIP-712 digest, ECDSA recovery, cached stake): on
    // separate machines a hop costs this plus a network round trip.
    const probe = new AnnouncementValidator({
      table: new PeerTable(),
      oracle: nodes[0].oracle,
      domain: nodes[0].domain,
      selfPeerId: nodes[0].peerId,
      rate: { capacity: 1_000, refillPerSecond: 1_000 },
    });
    const sample = nodes[1].announcer!.last!;
    const sampleBytes = encodeAnnouncement(sample);
    const verifies: number[] = [];
    for (let i = 0; i < 60; i++) {
      const t0 = performance.now();
      const verdict = await probe.check(sample.peerId, sample.peerId, sampleBytes);
      verifies.push(performance.now() - t0);
      if (!verdict.ok) throw new Error(`probe verdict: ${verdict.reason}`);
    }
    await stopAll(); // the rest runs without 20 nodes' heartbeats in the background
    collectGarbage();

    // ---- 2. adapter fetch: rank 16 on the 768-dim shape ----------------------------------------------------
    const shape = shapeConfig(SHAPES.default);
    const { adapter, encoded } = randomLora(shape, { rank: 16, seed: 1 });
    const id = adapter.id as Hex;
    const baseModel: Hex = `0x${"00".repeat(31)}01`;
    const owner = [deployer.account.address];
    await wait(
      admin.adapterRegistry.write.register([
        id,
        baseModel,
        16,
        BigInt(encoded.length),
        "bench://768-r16",
        owner,
        [10_000],
      ]),
    );
    const held: AdapterAvailability[] = [{ id, tier: "gpu" }];
    const holder = await stakedNode(
      "holder",
      { state: { adapters: () => held, load: () => ({ queueDepth: 0, freeSlots: 4 }) } },
      [],
    );
    await serveAdapters(holder.host, { read: async (x) => (x === id ? encoded : null) });
    const asker = await stakedNode("asker", {}, [holder.host.dialAddrs()[0]]);
    for (let t = 0; !asker.table.get(holder.peerId); t++) {
      if (t % 10 === 0) await holder.announcer!.announceNow(); // announcements are not replayed to late joiners
      await sleep(50);
    }
    const fetches: number[] = [];
    for (let run = 0; run < FETCH_RUNS; run++) {
      let stored = 0;
      // A fresh fetcher per run: registry answers are not cached between runs. The sink keeps the byte count.
      const fetcher = new AdapterFetcher({
        host: asker.host,
        table: asker.table,
        model: shape,
        maxRank: 64,
        registry: new ChainAdapterRegistry({ client: publicClient, registry: deployment.contracts.AdapterRegistry }),
        sink: {
          has: () => false,
          add: async (bytes) => {
            stored = bytes.length;
          },
        },
      });
      const t0 = performance.now();
      await fetcher.ensure(id);
      fetches.push(performance.now() - t0);
      if (stored !== encoded.length) throw new Error(`fetched ${stored} bytes, expected ${encoded.length}`);
    }
    log(`adapter fetch: ${encoded.length} bytes, runs ${fetches.map((t) => t.toFixed(1)).join(", ")} ms`);
    await stopAll();
    collectGarbage();

    // ---- 3. inference overhead -----------------------------------------------------------------------------
    const model = await loadModel(join(root, "models", "stories260K"));
    const backend = createCpuBackend(model.weights, { numBlocks: 64, blockSize: 16, adapterSlots: 1, maxRank: 8 });
    engine = await Engine.create({
      backend,
      tokenizer: model.tokenizer,
      modelName: model.name,
      adapterDir: join(work, "adapters"),
    });
    engine.start();
    const served = engine;
    const server = await stakedNode("server", { engine: served }, []);
    const client = await PeerNode.create(options("client", { bootstrap: [server.host.dialAddrs()[0]] }));
    running.push(client);
    await client.start();
    const target = { peerId: server.peerId, multiaddrs: server.host.multiaddrs() };
    const request: Omit<EngineRequest, "signal"> = {
      adapterId: null,
      prompt: "Once upon a time",
      maxTokens: 16,
      temperature: 0,
    };
    const local = async (): Promise<number> => {
      const t0 = performance.now();
      await served.submit(request).result;
      return performance.now() - t0;
    };
    const remote = async (): Promise<number> => {
      const t0 = performance.now();
      const r = await infer(client.host, target, request);
      if (r.tokenIds.length === 0) throw new Error("no tokens");
      return performance.now() - t0;
    };
    for (let i = 0; i < 8; i++) {
      await local();
      await remote();
    } // JIT and connection warm-up
    const locals: number[] = [];
    const remotes: number[] = [];
    const overheads: number[] = [];
    for (let i = 0; i < INFER_RUNS; i++) {
      // Alternate which goes first, so that neither always runs on a warmer cache.
      let l: number;
      let r: number;
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
    log(
      `infer: local p50 ${percentile(locals, 50).toFixed(2)} ms, remote p50 ${percentile(remotes, 50).toFixed(2)} ms`,
    );

    const fetchMs = percentile(fetches, 50);
    const figures = {
      announce_p50_ms: round(percentile(latencies, 50)),
      announce_p99_ms: round(percentile(latencies, 99)),
      announce_nodes: NODES,
      announce_arrivals: latencies.length,
      announce_lost: lost,
      announce_verify_ms_p50: round(percentile(verifies.slice(10), 50)),
      adapter_fetch_ms: round(fetchMs),
      adapter_fetch_ms_min: round(Math.min(...fetches)),
      adapter_fetch_bytes: encoded.length,
      adapter_fetch_mb_per_s: round(encoded.length / 1e6 / (fetchMs / 1000)),
      infer_overhead_ms_p50: round(percentile(overheads, 50)),
      infer_local_ms_p50: round(percentile(locals, 50)),
      infer_remote_ms_p50: round(percentile(remotes, 50)),
      infer_tokens: request.maxTokens,
    };
    await mkdir(join(root, "bench"), { recursive: true });
    await writeFile(join(root, "bench", "p2p.json"), `${JSON.stringify(figures, null, 2)}\n`);
    log(`wrote bench/p2p.json: ${JSON.stringify(figures)}`);
  } finally {
    await Promise.allSettled(running.map((n) => n.stop()));
    await engine?.close();
    await rm(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
