// Chain answers cached per key, for the reads every announcement and fetch would otherwise repeat (stakes,
// listings): concurrent questions about one key share one read, failed reads are not cached (the next question
// reads again), each answer lives for a TTL chosen from the answer itself (a "no" may be trusted for less time
// than a "yes"), and the least recently used keys are forgotten beyond `max`, so fresh keys cannot grow it.
import { LRUCache } from "lru-cache";

export interface ReadCacheOptions<K, V> {
  read: (key: K) => Promise<V>;
  /** How long an answer is trusted, in ms. */
  ttlMs: (value: V) => number;
  /** Keys remembered at most. */
  max: number;
  /** The clock (tests inject one). */
  now?: () => number;
}

export class ReadCache<K extends {}, V extends {}> {
  #cache: LRUCache<K, V>;
  /** Reads done (the cache works when this stays low). */
  reads = 0;

  constructor(options: ReadCacheOptions<K, V>) {
    this.#cache = new LRUCache<K, V>({
      max: options.max,
      ttl: 1, // every entry sets its own below; a ttl here turns expiry on
      ttlResolution: 0,
      perf: options.now ? { now: options.now } : undefined,
      fetchMethod: async (key, _stale, { options: entry }) => {
        this.reads++;
        const value = await options.read(key);
        entry.ttl = Math.max(1, options.ttlMs(value));
        return value;
      },
    });
  }

  /** The cached answer, or a fresh read shared with concurrent callers; rejects (and caches nothing) on failure. */
  async get(key: K): Promise<V> {
    return (await this.#cache.fetch(key)) as V;
  }

  /** Forgets one key, or all: the next question reads again. */
  invalidate(key?: K): void {
    if (key === undefined) this.#cache.clear();
    else this.#cache.delete(key);
  }
}
