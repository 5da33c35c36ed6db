/** A step's cost fitted as a fixed part plus a part per token fed (decode rows and prefill tokens). */
export interface StepCostFit {
  fixedMs: number;
  perTokenMs: number;
}

/** How fast a bucket's mean size follows new steps (the weight of the newest step). */
const TOKENS_WEIGHT = 0.25;
/**
 * How fast a bucket's time follows a faster step and a slower one. On a shared machine a step is often stretched by
 * other processes taking the cores (the delay adds, it never shortens a step), and one stretched lone step would
 * make every step look cheap beside it: the time leans to the fast steps, what the backend itself costs.
 */
const FASTER_WEIGHT = 0.5;
const SLOWER_WEIGHT = 0.1;
/** A cap never goes past this many times the largest step measured: larger steps are tried before trusted. */
const GROWTH = 2;
/**
 * How fast the lone step's time rises toward a slower 1-token step (a faster one it takes at once). A 1-token step
 * of a long context (a flood's row) costs more than a short one's, and a client's lone step is the short kind.
 */
const LONE_RISE = 0.001;

/**
 * What a forward step costs on this engine's backend, learnt from the steps it ran: ms = fixed + perToken x tokens.
 * Steps are kept in buckets by size (1, 2-3, 4-7, ... tokens), each an exponential average of its tokens and ms, and
 * the line is fitted by least squares over the buckets. Buckets, not a window of recent steps: under a steady
 * load every recent step has the same size and a window could no longer tell the fixed part from the rest, while
 * the buckets keep what small and large steps cost. The durations come from the caller (the engine's step event),
 * so the model itself reads no clock and its tests feed it durations. Not modelled: a row's attention grows with its
 * context, so rows of long contexts cost more than the fitted mean per token (the fit follows the steps that run).
 * What a lone step costs, the reference of every cap, is therefore not the 1-token bucket's mean (under a flood, its
 * long rows) but the fastest 1-token step, rising slowly (LONE_RISE) when only slower ones run.
 */
export class StepCostModel {
  readonly #buckets = new Map<number, { tokens: number; ms: number }>();
  #loneMs: number | null = null;

  /** Records one step of `tokens` tokens that took `ms`. */
  observe(tokens: number, ms: number): void {
    if (!(tokens >= 1) || !Number.isFinite(ms) || ms < 0) return; // nothing ran, or a clock went backwards
    if (tokens === 1) {
      const lone = this.#loneMs;
      this.#loneMs = lone === null || ms < lone ? ms : lone + LONE_RISE * (ms - lone);
    }
    const key = Math.floor(Math.log2(tokens));
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      this.#buckets.set(key, { tokens, ms });
      return;
    }
    bucket.tokens += TOKENS_WEIGHT * (tokens - bucket.tokens);
    bucket.ms += (ms < bucket.ms ? FASTER_WEIGHT : SLOWER_WEIGHT) * (ms - bucket.ms);
  }

  /**
   * The fitted line; null before any step. With steps of one size only, the fixed part cannot be told apart and is
   * taken as 0 (every token costs the same: the strictest reading, corrected once other sizes are seen). A fit
   * with a negative fixed part is read the same way; a slope <= 0 means the step costs the same at any size.
   */
  fit(): StepCostFit | null {
    const points = [...this.#buckets.values()];
    if (points.length === 0) return null;
    const n = points.length;
    const meanX = points.reduce((s, p) => s + p.tokens, 0) / n;
    const meanY = points.reduce((s, p) => s + p.ms, 0) / n;
    const sxx = points.reduce((s, p) => s + (p.tokens - meanX) ** 2, 0);
    const sxy = points.reduce((s, p) => s + (p.tokens - meanX) * (p.ms - meanY), 0);
    if (n < 2 || sxx === 0) return { fixedMs: 0, perTokenMs: meanY / meanX };
    const perTokenMs = sxy / sxx;
    const fixedMs = meanY - perTokenMs * meanX;
    if (perTokenMs > 0 && fixedMs < 0) {
      const throughOrigin =
        points.reduce((s, p) => s + p.tokens * p.ms, 0) / points.reduce((s, p) => s + p.tokens ** 2, 0);
      return { fixedMs: 0, perTokenMs: throughOrigin };
    }
    return { fixedMs, perTokenMs: Math.max(0, perTokenMs) };
  }

  /**
   * The most tokens a step may feed so that it costs at most `slowdown` times a lone request's decode step (the
   * fastest 1-token step, or the fitted one before any ran), each token past the first at the fitted cost per
   * token: floor(1 + (slowdown - 1) x lone / perToken), which is floor(slowdown + (slowdown - 1) x fixed / perToken)
   * where the lone step is on the line; at least 1, and never past what the measured steps vouch for
   * (#measuredBound). Infinity before any step and for an infinite slowdown.
   */
  tokenCap(slowdown: number): number {
    const fit = this.fit();
    if (fit === null || !Number.isFinite(slowdown)) return Infinity;
    const lone = this.#loneMs ?? fit.fixedMs + fit.perTokenMs;
    const tried = this.#measuredBound(lone, slowdown * lone);
    if (fit.perTokenMs <= 0) return tried;
    // (The small epsilon: rounding in the fit must not take a whole token off, 1 + 300.99999999 is 302.)
    const cap = Math.floor(1 + ((slowdown - 1) * lone) / fit.perTokenMs + 1e-6);
    return Math.max(1, Math.min(cap, tried));
  }

  /**
   * The most tokens the steps measured so far vouch for. While every size measured cost at most `limit` (ms), twice
   * the largest (larger steps are tried before trusted); once a size cost more, the size where the time reaches the
   * limit between it and the largest size within (interpolated), whatever the fitted line says: on a step whose cost
   * is flat at small sizes a fit over 1- and 2-token steps reads flat, and without this the cap would double again
   * and again although larger steps were measured dear. The lone step stands for the 1-token size (that bucket's
   * mean holds long rows and stretched steps too).
   */
  #measuredBound(lone: number, limit: number): number {
    const larger = [...this.#buckets.values()].filter((b) => b.tokens > 1);
    const sizes = [{ tokens: 1, ms: lone }, ...larger].sort((a, b) => a.tokens - b.tokens);
    const dear = sizes.findIndex((b) => b.ms > limit);
    if (dear < 0) return Math.floor(GROWTH * sizes[sizes.length - 1].tokens);
    const [within, over] = [sizes[dear - 1], sizes[dear]];
    const reach = ((limit - within.ms) * (over.tokens - within.tokens)) / (over.ms - within.ms);
    return Math.floor(within.tokens + reach + 1e-6);
  }
}
