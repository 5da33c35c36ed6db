// Per-key token buckets: a peer may announce in short bursts (start-up, tier churn) but not flood. Keys are
// bounded so that a stream of fresh peer ids cannot grow the map without end.

import { LRUCache } from "lru-cache";

export interface RateLimit {
  /** Burst size. */
  capacity: number;
  /** Tokens regained per second. */
  refillPerSecond: number;
}

export class TokenBuckets {
  #limit: RateLimit;
  /** Least recently seen keys are forgotten first (a forgotten key starts again with a full bucket). */
  #buckets: LRUCache<string, { tokens: number; at: number }>;

  constructor(limit: RateLimit, maxKeys = 10_000) {
    this.#limit = limit;
    this.#buckets = new LRUCache({ max: maxKeys });
  }

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string, now: number): boolean {
    const { capacity, refillPerSecond } = this.#limit;
    const bucket = this.#buckets.get(key) ?? { tokens: capacity, at: now };
    bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.at) / 1000) * refillPerSecond);
    bucket.at = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.#buckets.set(key, bucket);
    return allowed;
  }
}
