// What a request's `model` names, in the terms a payment needs: the listing the voucher pays (AdapterRegistry)
// and the content hash the nodes serve and announce. A model is a listing id, an adapter's content hash (paid
// through its oldest live listing), or an alias: one the client was given, else one a node's catalog knows
// (GET /v1/models/<alias>), always checked against the chain.
import type { Address, Hex } from "viem";
import { listingIdsOfContent, readListing, type ListingView, type ReadClient } from "../chain/index.ts";
import { UnknownModelError } from "./errors.ts";

export interface PaymentTarget {
  /** The model as the caller named it. */
  model: string;
  listingId: Hex;
  /** sha256 of the adapter's canonical encoding: what nodes announce and serve. */
  contentHash: Hex;
  registrant: Address;
}

export interface ListingResolverOptions {
  client: ReadClient;
  registry: Address;
  /** The registry's deployment block: event scans start there. */
  fromBlock?: bigint;
  /** Names the caller gave: alias -> listing id or content hash. */
  aliases?: Record<string, Hex>;
  /** Node API URLs to ask for aliases they know (changes as discovery learns nodes). */
  aliasSources?: () => Promise<string[]>;
  fetch?: typeof fetch;
  /** How long an answer is reused. Default 30 s. */
  ttlMs?: number;
}

const BYTES32 = /^0x[0-9a-fA-F]{64}$/;

export class ListingResolver {
  readonly #o: ListingResolverOptions;
  readonly #cache = new Map<string, { at: number; target: Promise<PaymentTarget> }>();

  constructor(options: ListingResolverOptions) {
    this.#o = options;
  }

  /** The listing and content `model` names; throws UnknownModelError when it names no live listing. */
  resolve(model: string): Promise<PaymentTarget> {
    const hit = this.#cache.get(model);
    if (hit && Date.now() - hit.at < (this.#o.ttlMs ?? 30_000)) return hit.target;
    const target = this.#resolve(model);
    this.#cache.set(model, { at: Date.now(), target });
    target.catch(() => this.#cache.delete(model));
    return target;
  }

  async #resolve(model: string): Promise<PaymentTarget> {
    if (typeof model !== "string" || model === "") {
      throw new UnknownModelError(
        String(model),
        "model must name an adapter: a listing id, a content hash or an alias",
      );
    }
    const id = BYTES32.test(model)
      ? (model.toLowerCase() as Hex)
      : (this.#o.aliases?.[model] ?? (await this.#nodeAlias(model)));
    if (id === null) {
      throw new UnknownModelError(
        model,
        `unknown model "${model}": not a listing id, an adapter content hash or an alias any known node has`,
        "name the adapter by its id (openlora adapter inspect <dir>) or its listing id",
      );
    }
    const listing = await readListing(this.#o.client, this.#o.registry, id);
    if (listing) return this.#target(model, listing);
    const ids = await listingIdsOfContent(this.#o.client, this.#o.registry, id, this.#o.fromBlock ?? 0n);
    const listings = await Promise.all(ids.map((l) => readListing(this.#o.client, this.#o.registry, l)));
    const live = listings.find((l) => l?.live);
    if (live) return this.#target(model, live);
    throw new UnknownModelError(
      model,
      ids.length === 0
        ? `adapter ${id} has no listing in AdapterRegistry: nobody can be paid for it`
        : `every listing of adapter ${id} is retired`,
      "register it with openlora adapter register <dir> --contributors ...",
    );
  }

  #target(model: string, listing: ListingView): PaymentTarget {
    if (!listing.live) {
      throw new UnknownModelError(model, `listing ${listing.listingId} is retired: it takes no new requests`);
    }
    return { model, listingId: listing.listingId, contentHash: listing.contentHash, registrant: listing.registrant };
  }

  /** The content hash a node's catalog gives the alias, from the first node that knows it. */
  async #nodeAlias(alias: string): Promise<Hex | null> {
    const fetchFn = this.#o.fetch ?? fetch;
    for (const api of (await this.#o.aliasSources?.()) ?? []) {
      try {
        const response = await fetchFn(new URL(`/v1/models/${encodeURIComponent(alias)}`, api), {
          signal: AbortSignal.timeout(5_000),
        });
        if (!response.ok) continue;
        const entry = (await response.json()) as { adapter?: unknown };
        if (typeof entry.adapter === "string" && BYTES32.test(entry.adapter)) return entry.adapter.toLowerCase() as Hex;
      } catch {
        // the next node may know it
      }
    }
    return null;
  }
}
