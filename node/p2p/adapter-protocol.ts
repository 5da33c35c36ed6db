// /openlora/adapter/1: one adapter's canonical bytes, by content hash (the id), from one peer.
//   client -> { id }
//   server -> { ok: true, size } then the bytes in frames of at most 1 MiB, then it closes
//          |  { ok: false, error: "not-found" | "busy" | "bad-request", message }
// The server holds one buffer per adapter, shared by every transfer of it, bounds the bytes held in total and per
// peer (beyond either `busy`) and gives each transfer a deadline: clients that never read cannot pin memory.
// The client refuses a size other than the one the listing it serves declares before reading a byte, hashes
// while it reads, and checks the sha256 against the content hash: a peer cannot make it keep bytes that are not
// the adapter it asked for.
import { createHash } from "node:crypto";
import type { Stream } from "@libp2p/interface";
import { deadline, frames, ProtocolError, readFrameList, readJson, writeJson } from "./frames.ts";
import type { P2pHost, PeerAddress } from "./host.ts";
import { OpenLoraError } from "../engine/errors.ts";
import { isAdapterId } from "../engine/adapter/id.ts";

export const ADAPTER_PROTOCOL = "/openlora/adapter/1";
const MAX_CONTROL_FRAME = 4096;
const MAX_CHUNK = 1 << 20;

/** Where a node serves adapter bytes from (its disk tier). */
export interface AdapterBytesSource {
  /** The canonical bytes of the adapter, or null when this node does not hold it. */
  read(id: string): Promise<Uint8Array | null>;
}

export interface ServeAdaptersOptions {
  /** Bytes per data frame. Default 1 MiB. */
  chunkBytes?: number;
  /** Concurrent inbound fetch streams per connection. Default 8. */
  maxInboundStreams?: number;
  /** Time a client has to send its request. Default 10 s. */
  requestTimeoutMs?: number;
  /** Time a whole transfer may take; a client that stops reading is cut off after it. Default 60 s. */
  transferTimeoutMs?: number;
  /** Adapter bytes held for serving, in total (one shared buffer per adapter); beyond it `busy`. Default 256 MiB. */
  maxBytesHeld?: number;
  /**
   * Share of maxBytesHeld one peer's transfers may hold (each adapter it is being sent counted once), so that one
   * peer asking for many adapters and never reading cannot fill the total for everyone. Default 1/4.
   */
  peerShare?: number;
}

/** What the server holds now: the bound a test or an operator checks. */
export interface AdapterServer {
  /** Bytes of the adapter buffers held for transfers in flight (each adapter counted once). */
  bytesHeld(): number;
  /** Transfers in flight. */
  transfers(): number;
  /** Bytes of the adapters being sent to one peer (each counted once). */
  bytesHeldFor(peerId: string): number;
}

/** One buffer per adapter, shared by every transfer of it in flight, released when the last one ends. */
interface SharedBytes {
  bytes: Promise<Uint8Array | null>;
  users: number;
  size: number;
}

/** Registers the server side on the host. */
export async function serveAdapters(
  host: P2pHost,
  source: AdapterBytesSource,
  options: ServeAdaptersOptions = {},
): Promise<AdapterServer> {
  const chunkBytes = Math.min(options.chunkBytes ?? MAX_CHUNK, MAX_CHUNK);
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const transferTimeoutMs = options.transferTimeoutMs ?? 60_000;
  const maxBytesHeld = options.maxBytesHeld ?? 256 << 20;
  const maxBytesPerPeer = maxBytesHeld * (options.peerShare ?? 1 / 4);
  const shared = new Map<string, SharedBytes>();
  /** Per peer: its transfers in flight per adapter id. */
  const byPeer = new Map<string, Map<string, number>>();
  let held = 0;
  let transfers = 0;
  const heldFor = (peer: string): number => {
    let bytes = 0;
    for (const id of byPeer.get(peer)?.keys() ?? []) bytes += shared.get(id)?.size ?? 0;
    return bytes;
  };

  // A client that never reads keeps its transfer waiting on the stream's drain: the deadline aborts it, and the
  // buffer it shares is released when the last transfer of that adapter ends.
  async function serveOne(stream: Stream, peer: string): Promise<void> {
    const lp = frames(stream, MAX_CONTROL_FRAME);
    const request = await readJson(lp, { signal: deadline(requestTimeoutMs) });
    const id = request.id;
    if (!isAdapterId(id)) {
      await writeJson(lp, { ok: false, error: "bad-request", message: "id must be 0x and 64 lowercase hex digits" });
      await stream.close();
      return;
    }
    const mine = byPeer.get(peer) ?? new Map<string, number>();
    const busy = !shared.has(id) && held >= maxBytesHeld;
    const peerBusy = !mine.has(id) && heldFor(peer) >= maxBytesPerPeer;
    if (busy || peerBusy) {
      const message = busy
        ? `${held} adapter bytes held for serving`
        : `${heldFor(peer)} adapter bytes held for this peer's transfers, its share is ${maxBytesPerPeer}`;
      await writeJson(lp, { ok: false, error: "busy", message });
      await stream.close();
      return;
    }
    const signal = deadline(transferTimeoutMs);
    const entry = acquire(id);
    mine.set(id, (mine.get(id) ?? 0) + 1);
    byPeer.set(peer, mine);
    transfers++;
    try {
      const bytes = await entry.bytes;
      if (!bytes) {
        await writeJson(lp, { ok: false, error: "not-found", message: `${id} is not held here` }, { signal });
        await stream.close({ signal });
        return;
      }
      await writeJson(lp, { ok: true, size: bytes.length }, { signal });
      for (let at = 0; at < bytes.length; at += chunkBytes) {
        await lp.write(bytes.subarray(at, at + chunkBytes), { signal }); // views of the shared buffer: no copy
      }
      await stream.close({ signal });
    } finally {
      transfers--;
      const left = (mine.get(id) ?? 1) - 1;
      if (left > 0) mine.set(id, left);
      else mine.delete(id);
      if (mine.size === 0) byPeer.delete(peer);
      release(id, entry);
    }
  }

  function acquire(id: string): SharedBytes {
    const existing = shared.get(id);
    if (existing) {
      existing.users++;
      return existing;
    }
    const entry: SharedBytes = { bytes: source.read(id), users: 1, size: 0 };
    shared.set(id, entry);
    entry.bytes.then(
      (bytes) => {
        if (bytes && shared.get(id) === entry) {
          entry.size = bytes.length;
          held += entry.size;
        }
      },
      () => {},
    );
    return entry;
  }

  function release(id: string, entry: SharedBytes): void {
    if (--entry.users > 0) return;
    shared.delete(id);
    held -= entry.size;
    entry.size = 0;
  }

  await host.handle(
    ADAPTER_PROTOCOL,
    (stream, connection) => {
      serveOne(stream, connection.remotePeer.toString()).catch((error) => stream.abort(error as Error));
    },
    { maxInboundStreams: options.maxInboundStreams ?? 8 },
  );
  return { bytesHeld: () => held, transfers: () => transfers, bytesHeldFor: heldFor };
}

export type FetchErrorCode = "not-found" | "busy" | "wrong-size" | "bad-bytes" | "protocol" | "network" | "timeout";

export class FetchError extends OpenLoraError {
  override name = "FetchError";
  declare readonly code: FetchErrorCode;
  readonly peerId: string;

  constructor(peerId: string, code: FetchErrorCode, message: string) {
    super(code, `adapter fetch from ${peerId}: ${message}`, { blame: "peer" });
    this.peerId = peerId;
  }

  /**
   * The peer misbehaved (sent bytes that are not the adapter, or broke the protocol): stop trusting it. A size
   * other than the listing's is not proof of that (the listing may declare a wrong size): nothing was read.
   */
  get peerFault(): boolean {
    return this.code === "bad-bytes" || this.code === "protocol";
  }
}

export interface FetchOptions {
  /** The sizes in bytes that the listings served declare (usually one): the peer's must be one of them. */
  sizes: readonly number[];
  /** Whole-fetch time bound. Default 60 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called on the peer's answer and on every frame of bytes: the fetcher races another peer without them. */
  onProgress?: () => void;
}

/** Fetches and verifies one adapter from one peer; throws FetchError. */
export async function fetchAdapterFrom(
  host: P2pHost,
  peer: PeerAddress,
  id: string,
  options: FetchOptions,
): Promise<Uint8Array> {
  const signal = deadline(options.timeoutMs ?? 60_000, options.signal);
  const fail = (code: FetchErrorCode, message: string): never => {
    throw new FetchError(peer.peerId, code, message);
  };
  const maxBytes = Math.max(0, ...options.sizes);
  let stream: Stream | undefined;
  try {
    stream = await host.openStream(peer, ADAPTER_PROTOCOL, { signal });
    // Everything up to maxBytes may arrive ahead of the reader (yamux windows grow): let the buffer hold it.
    const lp = frames(stream, MAX_CHUNK, maxBytes + 2 * MAX_CHUNK);
    await writeJson(lp, { id }, { signal });
    const header = await readJson(lp, { signal });
    if (header.ok !== true) {
      const code = header.error === "not-found" || header.error === "busy" ? header.error : "protocol";
      return fail(code, String(header.message ?? header.error ?? "refused"));
    }
    const size = header.size;
    if (!Number.isSafeInteger(size) || (size as number) <= 0)
      return fail("protocol", `bad size ${JSON.stringify(size)}`);
    if (!options.sizes.includes(size as number)) {
      return fail("wrong-size", `${size} bytes, the listing declares ${options.sizes.join(" or ")}`);
    }
    options.onProgress?.();
    const out = new Uint8Array(size as number);
    const hash = createHash("sha256");
    let at = 0;
    while (at < out.length) {
      const frame = await readFrameList(lp, { signal });
      if (at + frame.byteLength > out.length) return fail("bad-bytes", `more than the announced ${out.length} bytes`);
      for (const piece of frame) {
        // the pieces as they arrived: copied once, into place
        out.set(piece, at);
        hash.update(piece);
        at += piece.length;
      }
      options.onProgress?.();
    }
    const got = "0x" + hash.digest("hex");
    if (got !== id) return fail("bad-bytes", `sha256 is ${got}`);
    await stream.close({ signal }).catch(() => {});
    return out;
  } catch (error) {
    stream?.abort(error as Error);
    if (error instanceof FetchError) throw error;
    if (error instanceof ProtocolError) throw new FetchError(peer.peerId, "protocol", error.message);
    if (signal.aborted) {
      if (options.signal?.aborted) throw options.signal.reason;
      throw new FetchError(peer.peerId, "timeout", `no adapter within ${options.timeoutMs ?? 60_000} ms`);
    }
    throw new FetchError(peer.peerId, "network", (error as Error).message);
  }
}
