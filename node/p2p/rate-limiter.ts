// Per-key token buckets: a peer may announce in short bursts (start-up, tier churn) but not flood. Keys are
// bounded so that a stream of fresh peer ids cannot grow the map without end.

export interface RateLimit {
  /** Burst size. */
  capacity: number;
  /** Tokens regained per second. */
  refillPerSecond: number;
}

export class TokenBuckets {
  #limit: RateLimit;
  #maxKeys: number;
  #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(limit: RateLimit, maxKeys = 10_000) {
    this.#limit = limit;
    this.#maxKeys = maxKeys;
  }

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string, now: number): boolean {
    const { capacity, refillPerSecond } = this.#limit;
    const bucket = this.#buckets.get(key) ?? { tokens: capacity, at: now };
    bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.at) / 1000) * refillPerSecond);
    bucket.at = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.#buckets.delete(key); // re-insert: Map order is the eviction order (least recently seen first)
    this.#buckets.set(key, bucket);
    while (this.#buckets.size > this.#maxKeys) this.#buckets.delete(this.#buckets.keys().next().value!);
    return allowed;
  }
}
