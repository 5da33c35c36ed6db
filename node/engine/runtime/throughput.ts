/** Tokens per second over a sliding window of recent steps. */
export class Throughput {
  readonly windowMs: number;
  #events: { at: number; tokens: number }[] = [];

  constructor(windowMs = 5000) {
    this.windowMs = windowMs;
  }

  add(tokens: number, at = performance.now()): void {
    if (tokens > 0) this.#events.push({ at, tokens });
    this.#prune(at);
  }

  perSecond(now = performance.now()): number {
    this.#prune(now);
    if (this.#events.length === 0) return 0;
    const tokens = this.#events.reduce((n, e) => n + e.tokens, 0);
    // Over the time since the oldest event in the window, but at least a second (a lone step is no rate).
    const span = Math.min(Math.max(now - this.#events[0].at, 1000), this.windowMs);
    return (1000 * tokens) / span;
  }

  #prune(now: number): void {
    while (this.#events.length > 0 && now - this.#events[0].at > this.windowMs) this.#events.shift();
  }
}
