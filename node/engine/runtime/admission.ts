// What the engine accepts: a bounded amount of work in total and a share of it per owner, counted in requests
// and in tokens (prompt + max_tokens: the work and KV a request may need), from submit until the request ends.
// Beyond a bound, submit throws EngineBusyError at once with a time to retry: the queue never grows without end
// and one owner (a peer, a payer) flooding the node cannot take the room another owner needs. When the totals
// are full, a newcomer below its fair part takes room back: the heaviest owner's youngest queued request yields.
import { EngineBusyError } from "../errors.ts";
import type { AdmissionOptions } from "./types.ts";

/** Owner of requests that name none: the node's own (CLI, demos, local callers), bound only by the totals. */
export const LOCAL_OWNER = "";

/** One accepted request's hold on the bounds; released exactly once when the request ends however it ends. */
export interface AdmissionTicket {
  readonly owner: string;
  readonly tokens: number;
  /** The request's real size once known (a text prompt's tokens replace the estimate from its bytes). */
  resize(tokens: number): void;
  release(): void;
}

interface Held {
  requests: number;
  tokens: number;
}

/** Ends the youngest not yet started request of `owner` with `error`; false when it has none. */
export type Reclaim = (owner: string, error: EngineBusyError) => boolean;

export const DEFAULT_ADMISSION = { maxRequests: 4096, ownerShare: 1 / 4 } as const;

export class Admission {
  readonly options: AdmissionOptions;
  #total: Held = { requests: 0, tokens: 0 };
  #owners = new Map<string, Held>();
  /** Tokens per second lately (the engine's generation rate), for the retry estimate. */
  #rate: () => number;
  #reclaim: Reclaim | undefined;

  /**
   * `reclaim(owner, error)` ends the youngest request of `owner` that has not started (failing it with `error`)
   * and says whether there was one: when the totals are full, an owner above its fair part yields queued work
   * to an owner below it.
   */
  constructor(options: AdmissionOptions, rate: () => number, reclaim?: Reclaim) {
    const { maxRequests, maxTokens, ownerShare } = options;
    if (!Number.isInteger(maxRequests) || maxRequests < 1)
      throw new RangeError(`maxRequests must be a positive integer, got ${maxRequests}`);
    if (!Number.isInteger(maxTokens) || maxTokens < 1)
      throw new RangeError(`maxTokens must be a positive integer, got ${maxTokens}`);
    if (!(ownerShare > 0 && ownerShare <= 1)) throw new RangeError(`ownerShare must be in (0, 1], got ${ownerShare}`);
    this.options = options;
    this.#rate = rate;
    this.#reclaim = reclaim;
  }

  /** Held now, in total and by owner (owners holding nothing are not listed). */
  held(): { requests: number; tokens: number; owners: number } {
    return { ...this.#total, owners: this.#owners.size };
  }

  heldBy(owner: string): Held {
    return { ...(this.#owners.get(owner) ?? { requests: 0, tokens: 0 }) };
  }

  /** Accepts a request of `tokens` for `owner`, or throws EngineBusyError naming the bound it would pass. */
  admit(owner: string, tokens: number): AdmissionTicket {
    const { maxRequests, maxTokens, ownerShare } = this.options;
    const total = this.#total;
    if (owner !== LOCAL_OWNER) this.#makeRoom(owner, tokens);
    if (total.requests + 1 > maxRequests || total.tokens + tokens > maxTokens) {
      throw this.#busy(
        `the node holds ${total.requests} requests of ${total.tokens} tokens (bounds ${maxRequests} and ${maxTokens})`,
        total.tokens,
      );
    }
    const mine = this.#owners.get(owner) ?? { requests: 0, tokens: 0 };
    if (owner !== LOCAL_OWNER) {
      const requestShare = Math.max(1, Math.floor(maxRequests * ownerShare));
      const tokenShare = Math.max(1, Math.floor(maxTokens * ownerShare));
      if (mine.requests + 1 > requestShare || mine.tokens + tokens > tokenShare) {
        throw this.#busy(
          `this owner holds ${mine.requests} requests of ${mine.tokens} tokens (its share: ${requestShare} and ${tokenShare})`,
          mine.tokens,
        );
      }
    }
    this.#owners.set(owner, mine);
    let held = tokens;
    let released = false;
    const change = (requests: number, delta: number): void => {
      mine.requests += requests;
      mine.tokens += delta;
      total.requests += requests;
      total.tokens += delta;
      if (mine.requests === 0) this.#owners.delete(owner);
    };
    change(1, tokens);
    return {
      owner,
      get tokens() {
        return held;
      },
      resize(next: number) {
        if (released) return;
        change(0, next - held);
        held = next;
      },
      release() {
        if (released) return;
        released = true;
        change(-1, -held);
      },
    };
  }

  /**
   * While the totals cannot take `tokens` more for `owner` and it holds less than a fair part (the totals split
   * among the owners holding work, it included), the owner holding the most tokens above its fair part yields
   * its youngest request that has not started (failed with EngineBusyError, so its caller retries later).
   */
  #makeRoom(owner: string, tokens: number): void {
    const { maxRequests, maxTokens } = this.options;
    const total = this.#total;
    const full = (): boolean => total.requests + 1 > maxRequests || total.tokens + tokens > maxTokens;
    if (!this.#reclaim || !full()) return;
    const owners = this.#owners.size + (this.#owners.has(owner) ? 0 : 1);
    const fairRequests = maxRequests / owners;
    const fairTokens = maxTokens / owners;
    const mine = this.#owners.get(owner) ?? { requests: 0, tokens: 0 };
    if (mine.requests + 1 > fairRequests || mine.tokens + tokens > fairTokens) return;
    const tried = new Set<string>([owner, LOCAL_OWNER]);
    while (full()) {
      let heaviest: string | undefined;
      for (const [o, held] of this.#owners) {
        if (tried.has(o) || (held.requests <= fairRequests && held.tokens <= fairTokens)) continue;
        if (heaviest === undefined || held.tokens > this.#owners.get(heaviest)!.tokens) heaviest = o;
      }
      if (heaviest === undefined) return;
      const held = this.#owners.get(heaviest)!;
      const error = this.#busy(
        `this owner's queued request yielded its place to another owner (it held ${held.requests} requests of ${held.tokens} tokens, a fair part is ${Math.floor(fairRequests)} and ${Math.floor(fairTokens)})`,
        held.tokens,
      );
      if (!this.#reclaim(heaviest, error)) tried.add(heaviest);
    }
  }

  #busy(what: string, tokensAhead: number): EngineBusyError {
    const rate = this.#rate();
    // The work ahead drained at the recent rate; without a rate yet (nothing generated lately), a second.
    const ms = rate > 0 ? (1000 * tokensAhead) / rate : 1000;
    return new EngineBusyError(`engine busy: ${what}`, Math.min(60_000, Math.max(250, Math.ceil(ms))));
  }
}
