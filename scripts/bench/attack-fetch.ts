// Issue 13, item 4's figure for bench:attack: an adapter fetch on real libp2p hosts over loopback, with no liar
// and with a staller ranked first (it announces the adapter in a GPU slot, then never answers). The fetch waits
// the first-byte deadline for the staller, then races the honest peer: not the per-peer timeout (60 s).
// Registry and sink are stubs (what is measured is the network and the race, not the chain).
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hex } from "viem";
import type { ModelConfig } from "../../node/engine/model/config.ts";
import { AdapterFetcher } from "../../node/p2p/adapter-fetcher.ts";
import { serveAdapters } from "../../node/p2p/adapter-protocol.ts";
import type { ListingView } from "../../node/p2p/adapter-registry.ts";
import type { Announcement } from "../../node/p2p/announcement.ts";
import { P2pHost } from "../../node/p2p/host.ts";
import { PeerTable } from "../../node/p2p/peer-table.ts";

/** A TinyLlama-like shape: the size bound for rank 16 is far above the adapter used. */
const CONFIG: ModelConfig = {
  dim: 2048,
  hiddenDim: 5632,
  nLayers: 22,
  nHeads: 32,
  nKvHeads: 4,
  headDim: 64,
  vocabSize: 32000,
  maxSeqLen: 2048,
  normEps: 1e-5,
  ropeTheta: 10000,
};
const ADAPTER_BYTES = 4 << 20;

async function host(): Promise<P2pHost> {
  const h = await P2pHost.create({ dataDir: await mkdtemp(join(tmpdir(), "openlora-bench-fetch-")) });
  await h.start();
  return h;
}

function announce(h: P2pHost, id: Hex, tier: "gpu" | "disk"): Announcement {
  return {
    v: 2,
    peerId: h.peerId.toString(),
    operator: "0x0000000000000000000000000000000000000001",
    multiaddrs: h.multiaddrs(),
    api: "",
    adapters: [{ id, tier, listings: [] }],
    pricePerToken: 0n,
    queueDepth: 0,
    freeSlots: 1,
    ts: Date.now(),
    seq: 1,
    sig: "0x",
  };
}

/** Median fetch time in ms over `runs`, with or without a staller ranked before the honest peer. */
export async function fetchWithStaller(runs: number, firstByteMs: number) {
  const [honest, staller, client] = await Promise.all([host(), host(), host()]);
  try {
    const bytes = new Uint8Array(randomBytes(ADAPTER_BYTES));
    const id = `0x${createHash("sha256").update(bytes).digest("hex")}` as Hex;
    await serveAdapters(honest, { read: async (wanted) => (wanted === id ? bytes : null) });
    await serveAdapters(staller, { read: () => new Promise<null>(() => {}) });
    const listing = { contentHash: id, live: true, rank: 16, size: ADAPTER_BYTES } as ListingView;
    const registry = { listing: async () => listing, listingsOf: async () => [listing] };
    const time = async (withStaller: boolean): Promise<number> => {
      const table = new PeerTable();
      table.upsert(announce(honest, id, "disk"));
      if (withStaller) table.upsert(announce(staller, id, "gpu"));
      const fetcher = new AdapterFetcher({
        host: client,
        table,
        registry,
        sink: { has: () => false, add: async () => {} },
        model: CONFIG,
        maxRank: 64,
        firstByteMs,
      });
      return (await fetcher.ensure(id)).ms;
    };
    const median = async (withStaller: boolean): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < runs; i++) times.push(await time(withStaller));
      return times.sort((a, b) => a - b)[Math.floor(runs / 2)];
    };
    await time(false); // warm-up: connections
    return { idleMs: await median(false), withStallerMs: await median(true), firstByteMs, timeoutMs: 60_000 };
  } finally {
    await Promise.all([honest, staller, client].map((h) => h.stop()));
  }
}
