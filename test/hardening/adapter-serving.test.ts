// Issue 13, item 2, on real libp2p hosts over loopback: clients that ask for an adapter and never read cannot pin
// memory. Every transfer of one adapter shares one buffer, the bytes held in total and per peer are capped (beyond
// either the server answers `busy`, which is not the peer's fault), and a transfer deadline cuts the stalled
// streams off.
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Stream } from "@libp2p/interface";
import {
  fetchAdapterFrom,
  FetchError,
  serveAdapters,
  ADAPTER_PROTOCOL,
  type AdapterServer,
} from "../../node/p2p/adapter-protocol.ts";
import { frames, writeJson } from "../../node/p2p/frames.ts";
import { P2pHost, type PeerAddress } from "../../node/p2p/host.ts";

const ADAPTER_BYTES = 4 << 20;

let hosts: P2pHost[] = [];
afterEach(async () => {
  await Promise.all(hosts.map((h) => h.stop()));
  hosts = [];
});

async function startHosts(count: number): Promise<P2pHost[]> {
  const made = await Promise.all(
    Array.from({ length: count }, async () => {
      const host = await P2pHost.create({ dataDir: await mkdtemp(join(tmpdir(), "openlora-hardening-serve-")) });
      await host.start();
      return host;
    }),
  );
  hosts.push(...made);
  return made;
}

function adapter(): { id: string; bytes: Uint8Array } {
  const bytes = new Uint8Array(randomBytes(ADAPTER_BYTES));
  return { id: "0x" + createHash("sha256").update(bytes).digest("hex"), bytes };
}

/** Asks for `id` and never reads a byte of the answer. */
async function pausedFetch(client: P2pHost, server: PeerAddress, id: string): Promise<Stream> {
  const stream = await client.openStream(server, ADAPTER_PROTOCOL);
  await writeJson(frames(stream, 4096), { id });
  stream.pause();
  return stream;
}

/** A server of two adapters that counts its reads of each from "disk". */
async function adapterServer(
  host: P2pHost,
  adapters: { id: string; bytes: Uint8Array }[],
  options: { transferTimeoutMs: number; maxBytesHeld: number },
): Promise<{ server: AdapterServer; reads: Map<string, number> }> {
  const reads = new Map<string, number>();
  const source = {
    read: async (id: string) => {
      reads.set(id, (reads.get(id) ?? 0) + 1);
      const found = adapters.find((a) => a.id === id);
      return found ? found.bytes.slice() : null; // a fresh copy per read, as the disk tier gives
    },
  };
  const server = await serveAdapters(host, source, { maxInboundStreams: 16, ...options });
  return { server, reads };
}

describe("adapter serving to clients that never read (item 2)", () => {
  it("32 paused streams from 4 identities hold one buffer; an honest fetch completes; the deadline frees it", async () => {
    const [holder, honest, ...attackers] = await startHosts(6);
    const [a, b] = [adapter(), adapter()];
    const { server, reads } = await adapterServer(holder, [a, b], {
      transferTimeoutMs: 10_000, // long enough for 32 streams to open on a loaded machine
      maxBytesHeld: 2 * ADAPTER_BYTES,
    });
    const address: PeerAddress = { peerId: holder.peerId.toString(), multiaddrs: holder.multiaddrs() };

    const paused = await Promise.all(
      attackers.flatMap((attacker) => Array.from({ length: 8 }, () => pausedFetch(attacker, address, a.id))),
    );
    expect(paused).toHaveLength(32);
    await vi.waitFor(() => expect(server.transfers()).toBe(32), { timeout: 15_000, interval: 20 });
    expect(server.bytesHeld()).toBe(ADAPTER_BYTES); // one shared buffer, not 32 copies
    expect(reads.get(a.id)).toBe(1);

    const got = await fetchAdapterFrom(honest, address, a.id, { sizes: [ADAPTER_BYTES] });
    expect(Buffer.compare(got, a.bytes)).toBe(0);
    const other = await fetchAdapterFrom(honest, address, b.id, { sizes: [ADAPTER_BYTES] });
    expect(Buffer.compare(other, b.bytes)).toBe(0);

    // The stalled transfers outlive the deadline only until it fires: then nothing is held.
    await vi.waitFor(
      () => {
        expect(server.transfers()).toBe(0);
        expect(server.bytesHeld()).toBe(0);
      },
      { timeout: 30_000, interval: 50 },
    );
  }, 60_000);

  it("beyond the bytes held in total a new adapter is answered busy, which is not the server's fault", async () => {
    const [holder, honest, attacker] = await startHosts(3);
    const [a, b] = [adapter(), adapter()];
    const { server } = await adapterServer(holder, [a, b], {
      transferTimeoutMs: 60_000,
      maxBytesHeld: ADAPTER_BYTES,
    });
    const address: PeerAddress = { peerId: holder.peerId.toString(), multiaddrs: holder.multiaddrs() };
    const paused = await Promise.all(Array.from({ length: 4 }, () => pausedFetch(attacker, address, a.id)));
    await vi.waitFor(() => expect(server.bytesHeld()).toBe(ADAPTER_BYTES), { timeout: 15_000, interval: 20 });

    const error = await fetchAdapterFrom(honest, address, b.id, { sizes: [ADAPTER_BYTES] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).code).toBe("busy");
    expect((error as FetchError).peerFault).toBe(false);

    // The adapter already held is still served from the shared buffer.
    const got = await fetchAdapterFrom(honest, address, a.id, { sizes: [ADAPTER_BYTES] });
    expect(Buffer.compare(got, a.bytes)).toBe(0);

    for (const stream of paused) stream.abort(new Error("test over"));
    await vi.waitFor(() => expect(server.bytesHeld()).toBe(0), { timeout: 15_000, interval: 20 });
  }, 60_000);

  it("one peer asking for many adapters holds at most its share of the total; other peers are still served", async () => {
    const [holder, honest, attacker] = await startHosts(3);
    const adapters = [adapter(), adapter(), adapter()];
    const [a, b, c] = adapters;
    const { server } = await adapterServer(holder, adapters, {
      transferTimeoutMs: 60_000,
      maxBytesHeld: 4 * ADAPTER_BYTES, // a peer's share (1/4): one adapter's buffer
    });
    const address: PeerAddress = { peerId: holder.peerId.toString(), multiaddrs: holder.multiaddrs() };
    const attackerId = attacker.peerId.toString();
    const paused = await Promise.all(Array.from({ length: 4 }, () => pausedFetch(attacker, address, a.id)));
    await vi.waitFor(() => expect(server.bytesHeldFor(attackerId)).toBe(ADAPTER_BYTES), {
      timeout: 15_000,
      interval: 20,
    });

    // More streams of the adapter it holds share its buffer; another adapter is over its share: busy.
    const error = await fetchAdapterFrom(attacker, address, b.id, { sizes: [ADAPTER_BYTES] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FetchError);
    expect((error as FetchError).code).toBe("busy");
    expect((error as FetchError).message).toMatch(/held for this peer's transfers, its share is 4194304/);
    expect(server.bytesHeldFor(attackerId)).toBe(ADAPTER_BYTES);

    // The total has room for everyone else.
    for (const wanted of [b, c]) {
      const got = await fetchAdapterFrom(honest, address, wanted.id, { sizes: [ADAPTER_BYTES] });
      expect(Buffer.compare(got, wanted.bytes)).toBe(0);
    }
    for (const stream of paused) stream.abort(new Error("test over"));
    await vi.waitFor(() => expect(server.bytesHeldFor(attackerId)).toBe(0), { timeout: 15_000, interval: 20 });
  }, 60_000);
});
