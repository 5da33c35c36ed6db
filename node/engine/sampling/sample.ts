import type { SamplingParams } from "../backend/backend.ts";

/**
 * Picks the next token from one row of logits with a uniform draw u in [0, 1). Every backend follows this rule:
 * 1. temperature 0: the argmax (the lowest id among equal maxima); u is unused.
 * 2. otherwise p = softmax(logits / temperature), and the kept set is every token whose p is at least a cut:
 *    the k-th largest p when topK > 0, raised to the p of the token where the mass of the descending order
 *    first reaches topP when topP < 1 (ties at the cut are all kept).
 * 3. walking the kept tokens in increasing id, the first whose running sum of p exceeds u x (sum of kept p).
 * Walking in id order (not probability order) keeps step 3 a prefix sum, which a GPU does without a sort.
 */
export function sampleToken(logits: Float32Array, params: SamplingParams, u: number): number {
  if (params.temperature === 0) return argmax(logits);
  const n = logits.length;
  const max = logits[argmax(logits)];
  const p = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    p[i] = Math.exp((logits[i] - max) / params.temperature);
    total += p[i];
  }
  for (let i = 0; i < n; i++) p[i] /= total;

  let cut = 0;
  if (params.topK > 0 || params.topP < 1) {
    const sorted = Float64Array.from(p).sort().reverse();
    const k = params.topK > 0 ? Math.min(params.topK, n) : n;
    cut = sorted[k - 1];
    if (params.topP < 1) {
      let mass = 0;
      for (let i = 0; i < k; i++) {
        mass += sorted[i];
        if (mass >= params.topP) {
          cut = Math.max(cut, sorted[i]);
          break;
        }
      }
    }
  }

  let kept = 0;
  for (let i = 0; i < n; i++) if (p[i] >= cut) kept += p[i];
  const target = u * kept;
  let running = 0;
  let lastKept = -1;
  for (let i = 0; i < n; i++) {
    if (p[i] < cut) continue;
    running += p[i];
    lastKept = i;
    if (running > target) return i;
  }
  return lastKept; // rounding left the draw past the end: the last kept token
}

/** Index of the largest value, the lowest index among equals. */
export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
