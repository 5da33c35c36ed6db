// Issue 13, items 11 and 13, on real libp2p hosts over loopback: a peer that floods a stream past what a read may
// buffer is blamed as a protocol breaker (not a network failure), and a burst of 32 streams on a fresh
// connection is served instead of reset.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { frames, ProtocolError, readFrame, readFrameList } from "../../node/p2p/frames.ts";
import { P2pHost } from "../../node/p2p/host.ts";

let hosts: P2pHost[] = [];
afterEach(async () => {
  await Promise.all(hosts.map((h) => h.stop()));
  hosts = [];
});

async function twoHosts(): Promise<[P2pHost, P2pHost]> {
  const made = await Promise.all(
    [0, 1].map(async () => {
      const host = await P2pHost.create({ dataDir: await mkdtemp(join(tmpdir(), "openlora-hardening-p2p-")) });
      await host.start();
      return host;
    }),
  );
  hosts.push(...made);
  return made as [P2pHost, P2pHost];
}

describe("stream bounds between peers (items 11 and 13)", () => {
  it("a peer flooding past the read buffer is a ProtocolError (blame peer), not a network error", async () => {
    const [server, client] = await twoHosts();
    await server.handle("/openlora-test/flood/1", (stream) => {
      const lp = frames(stream, 1 << 20);
      // 12 frames of 16 KiB at once, unasked: within yamux's first window, far past the reader's 32 KiB buffer.
      void Promise.all(Array.from({ length: 12 }, () => lp.write(new Uint8Array(16 * 1024)))).catch(() => {});
    });
    const stream = await client.openStream(
      { peerId: server.peerId.toString(), multiaddrs: server.multiaddrs() },
      "/openlora-test/flood/1",
    );
    const closed = new Promise((resolve) => stream.addEventListener("close", resolve, { once: true }));
    const lp = frames(stream, 16 * 1024, 32 * 1024);
    await closed; // the overflow aborts the stream before anything is read
    const error = await readFrameList(lp).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).blame).toBe("peer");
    expect((error as Error).message).toMatch(/Read buffer overflow - \d+ > 32768/);
  });

  it("serves a burst of 32 streams opened at once on a fresh connection (yamux resets past 10 by default)", async () => {
    const [server, client] = await twoHosts();
    await server.handle(
      "/openlora-test/echo/1",
      async (stream) => {
        const lp = frames(stream, 1024);
        await lp.write(await readFrame(lp));
        await stream.close();
      },
      { maxInboundStreams: 64 },
    );
    const peer = { peerId: server.peerId.toString(), multiaddrs: server.multiaddrs() };
    const echoes = await Promise.all(
      Array.from({ length: 32 }, async (_, i) => {
        const lp = frames(await client.openStream(peer, "/openlora-test/echo/1"), 1024);
        await lp.write(Uint8Array.of(i));
        return (await readFrame(lp))[0];
      }),
    );
    expect(echoes).toEqual(Array.from({ length: 32 }, (_, i) => i));
  });
});
