// Getting an adapter this node lacks: ask AdapterRegistry for the listing being served (or, without one, every
// listing of the content hash): registered, live, a rank our slots take, a size such an adapter can have on our
// model; then the peers that announce the content hash, best first (routing.ts), taking exactly the size the
// listing declares; the bytes must hash to the content hash; then they go into the engine's disk tier. A peer
// that sends bad bytes is banned from the table and the next one is tried. A peer that announced the adapter and
// then answers not-found or stalls gets a strike (banned at the table's maxStrikes), and a stalled peer holds the
// fetch up for `firstByteMs` only: then the next peer races it (fetch-race.ts).
import type { Hex } from "viem";
import type { ModelConfig } from "../engine/model/config.ts";
import { LINEAR_TARGETS, projectionShape } from "../engine/model/config.ts";
import { fetchAdapterFrom, FetchError } from "./adapter-protocol.ts";
import type { AdapterRegistryView, ListingView } from "./adapter-registry.ts";
import { Emitter } from "../engine/emitter.ts";
import type { P2pHost } from "./host.ts";
import type { PeerTable } from "./peer-table.ts";
import { rankCandidates } from "./routing.ts";
import { raceCandidates } from "./fetch-race.ts";
import { OpenLoraError } from "../engine/errors.ts";
import { isAdapterId } from "../engine/adapter/id.ts";

/** Where fetched adapters go: the engine (Engine.adapters.has / Engine.addAdapter). */
export interface AdapterSink {
  has(id: string): boolean;
  /** Decodes, checks against the model and stores the canonical bytes; throws when they do not fit. */
  add(bytes: Uint8Array): Promise<unknown>;
}

/**
 * The most bytes a canonical encoding of a rank-`rank` adapter can take on this model (every layer, all seven
 * targets), with a generous bound for the JSON header: anything longer is not such an adapter.
 */
export function canonicalSizeLimit(config: ModelConfig, rank: number): number {
  let perLayer = 0;
  for (const target of LINEAR_TARGETS) {
    const { inDim, outDim } = projectionShape(config, target);
    perLayer += 4 * rank * (inDim + outDim);
  }
  return 12 + 1024 + 64 * LINEAR_TARGETS.length * config.nLayers + perLayer * config.nLayers;
}

export type AdapterUnavailableReason =
  | "unregistered" // no listing names it (or the listing asked for does not exist)
  | "wrong-listing" // the listing asked for lists other content
  | "retired" // the listing (every listing of it) is retired: no new use
  | "rank" // over the rank our slots take
  | "size" // the listing declares a size no adapter of its rank has on our model
  | "no-peers"
  | "all-failed"
  | "rejected";

export class AdapterUnavailableError extends OpenLoraError {
  override name = "AdapterUnavailableError";
  readonly adapterId: string;
  readonly reason: AdapterUnavailableReason;

  constructor(adapterId: string, reason: AdapterUnavailableReason, message: string, options?: { cause?: unknown }) {
    super("adapter_unavailable", `adapter ${adapterId}: ${message}`, { blame: "node", ...options });
    this.adapterId = adapterId;
    this.reason = reason;
  }
}

export interface FetchedAdapter {
  id: string;
  /** The peer it came from, or null when it was already here. */
  from: string | null;
  bytes: number;
  ms: number;
}

export interface AdapterFetcherEvents {
  fetched: FetchedAdapter;
  /**
   * One peer failed (code "stalled": it sent nothing for firstByteMs and another peer answered first); `struck`
   * when it announced the adapter and did not serve it, `banned` when it is banned now.
   */
  failed: { id: string; peerId: string; code: string; message: string; banned: boolean; struck: boolean };
}

export interface AdapterFetcherOptions {
  host: P2pHost;
  table: PeerTable;
  registry: AdapterRegistryView;
  sink: AdapterSink;
  /** The model adapters must fit: bounds the accepted size by rank. */
  model: ModelConfig;
  /** Largest rank the engine's slots take; higher ones are refused before any fetch. */
  maxRank: number;
  /** How long a peer that sent bad bytes stays banned. Default 10 min. */
  banMs?: number;
  /** Per-peer fetch time bound. Default 60 s. */
  timeoutMs?: number;
  /** A peer that sends nothing (no answer, no bytes) for this long has the next peer race it. Default 3 s. */
  firstByteMs?: number;
}

export class AdapterFetcher extends Emitter<AdapterFetcherEvents> {
  #o: AdapterFetcherOptions;
  #inFlight = new Map<string, Promise<FetchedAdapter>>();

  constructor(options: AdapterFetcherOptions) {
    super();
    this.#o = options;
  }

  /**
   * Makes the adapter (content hash `id`) present in the sink, fetching it when needed, for the listing
   * `options.listingId` (without one: for any live listing of it). Concurrent calls for one id and listing share
   * one fetch; a caller's signal only stops that caller's wait (the fetch itself is bounded by the per-peer
   * timeout), so one impatient requester cannot fail the others waiting for the same adapter.
   */
  ensure(id: string, options: { signal?: AbortSignal; listingId?: Hex } = {}): Promise<FetchedAdapter> {
    if (this.#o.sink.has(id)) return Promise.resolve({ id, from: null, bytes: 0, ms: 0 });
    const key = `${id}:${options.listingId ?? ""}`;
    let pending = this.#inFlight.get(key);
    if (!pending) {
      pending = this.#fetch(id, options.listingId).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, pending);
    }
    return options.signal ? raceSignal(pending, options.signal) : pending;
  }

  /** The live listings a fetch of `id` serves: the one asked for, or every live listing of the content. */
  async #listings(id: Hex, listingId: Hex | undefined): Promise<ListingView[]> {
    const fail = (reason: AdapterUnavailableReason, message: string): never => {
      throw new AdapterUnavailableError(id, reason, message);
    };
    if (listingId !== undefined) {
      const l = await this.#o.registry.listing(listingId);
      if (!l) return fail("unregistered", `listing ${listingId} is not registered in AdapterRegistry`);
      if (l.contentHash.toLowerCase() !== id) {
        return fail("wrong-listing", `listing ${listingId} lists ${l.contentHash}`);
      }
      if (!l.live) return fail("retired", `listing ${listingId} is retired`);
      return [l];
    }
    const all = await this.#o.registry.listingsOf(id);
    if (all.length === 0) return fail("unregistered", "no listing in AdapterRegistry names it");
    const live = all.filter((l) => l.live);
    if (live.length === 0) return fail("retired", "every listing of it is retired");
    return live;
  }

  async #fetch(id: string, listingId: Hex | undefined): Promise<FetchedAdapter> {
    const started = performance.now();
    if (!isAdapterId(id)) throw new AdapterUnavailableError(id, "unregistered", "is not an adapter content hash");
    const listings = await this.#listings(id as Hex, listingId);
    const ranked = listings.filter((l) => l.rank <= this.#o.maxRank);
    if (ranked.length === 0) {
      const rank = Math.min(...listings.map((l) => l.rank));
      throw new AdapterUnavailableError(id, "rank", `rank ${rank} exceeds the slots' ${this.#o.maxRank}`);
    }
    // A size no adapter of the listing's rank can have on this model is refused before any byte moves.
    const sized = ranked.filter((l) => l.size <= canonicalSizeLimit(this.#o.model, l.rank));
    if (sized.length === 0) {
      const l = ranked[0];
      const why = `the listing declares ${l.size} bytes, over what a rank-${l.rank} adapter takes on this model`;
      throw new AdapterUnavailableError(id, "size", why);
    }
    const sizes = [...new Set(sized.map((l) => l.size))];
    const self = this.#o.host.peerId.toString();
    const { table } = this.#o;
    // Peers with strikes (announced an adapter before, then did not serve it) are tried after the clean ones.
    const candidates = rankCandidates(
      table.withAdapter(id).filter((e) => !e.local && e.peerId !== self && !table.isBanned(e.peerId)),
      id,
      undefined,
      (peerId) => table.strikes(peerId),
    );
    if (candidates.length === 0) throw new AdapterUnavailableError(id, "no-peers", "no live peer announces it");
    const firstByteMs = this.#o.firstByteMs ?? 3000;
    let from = "";
    const bytes = await raceCandidates(
      candidates,
      async (c, signal, progress) => {
        const address = { peerId: c.peerId, multiaddrs: c.announcement.multiaddrs };
        const got = await fetchAdapterFrom(this.#o.host, address, id, {
          sizes,
          timeoutMs: this.#o.timeoutMs,
          signal,
          onProgress: progress,
        });
        from = c.peerId;
        return got;
      },
      {
        what: `adapter ${id}`,
        hedgeMs: firstByteMs,
        onError: (c, error) => this.#failed(id, c.peerId, error),
        onStalled: (c) =>
          this.#failed(
            id,
            c.peerId,
            new FetchError(c.peerId, "timeout", `sent nothing for ${firstByteMs} ms`),
            "stalled",
          ),
      },
    ).catch((error: unknown) => {
      throw new AdapterUnavailableError(id, "all-failed", (error as Error).message, { cause: error });
    });
    // The bytes hash to a listed content hash, so they are what its registrant listed; if the engine still
    // refuses them (another model's shape), no peer is at fault.
    try {
      await this.#o.sink.add(bytes);
    } catch (error) {
      throw new AdapterUnavailableError(id, "rejected", `the engine refused it: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const result = { id, from, bytes: bytes.length, ms: performance.now() - started };
    this.emit("fetched", result);
    return result;
  }

  /**
   * Judges one peer's failure: bad bytes or a broken protocol ban it; an adapter it announced and then did not
   * serve (not-found, a stall, a timeout) is a strike; busy, network errors and a size other than the listing's
   * are nobody's proven fault.
   */
  #failed(id: string, peerId: string, error: unknown, code?: string): void {
    const banMs = this.#o.banMs ?? 600_000;
    const message = (error as Error).message;
    const fault = error instanceof FetchError && error.peerFault;
    const struck = error instanceof FetchError && (error.code === "not-found" || error.code === "timeout");
    if (fault) this.#o.table.ban(peerId, banMs, `adapter ${id}: ${message}`);
    else if (struck) this.#o.table.strike(peerId, banMs, `adapter ${id}: announced, then ${message}`);
    this.emit("failed", {
      id,
      peerId,
      code: code ?? (error instanceof FetchError ? error.code : "error"),
      message,
      banned: this.#o.table.isBanned(peerId),
      struck,
    });
  }
}

function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
