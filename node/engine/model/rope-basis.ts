/**
 * Hugging Face's Llama conversion permutes the rows of q/k so that "rotate half" RoPE gives the same result as
 * llama2.c's interleaved pairs: inside each head, canonical row 2i sits at i and row 2i+1 at i + headDim/2.
 * These move rows between the two orders for any [nHeads*headDim, cols] row-major matrix (base q/k weights,
 * and lora_B of q/k, whose rows are output rows too). Qwen's and Gemma's checkpoints are trained in the rotate-half
 * order, so their q/k rows (and biases and norm weights) take the same move.
 */

/** From HF's rotate-half order back to the canonical interleaved order. */
export function unpermuteRotateHalfRows(w: Float32Array, nHeads: number, cols: number): Float32Array {
  return moveRows(w, nHeads, cols, "to-canonical");
}

/** From the canonical interleaved order to HF's rotate-half order. */
export function permuteRotateHalfRows(w: Float32Array, nHeads: number, cols: number): Float32Array {
  return moveRows(w, nHeads, cols, "to-rotate-half");
}

/**
 * The rows of a matrix stored as bytes (any dtype: a row of f16 values or of Q8_0 blocks is rowBytes bytes) from
 * rotate-half order back to the canonical one, without decoding them.
 */
export function unpermuteRotateHalfRowBytes(data: Uint8Array, nHeads: number, rowBytes: number): Uint8Array {
  return moveRows(data, nHeads, rowBytes, "to-canonical");
}

function moveRows<T extends Float32Array | Uint8Array>(
  w: T,
  nHeads: number,
  cols: number,
  direction: "to-canonical" | "to-rotate-half",
): T {
  const headDim = w.length / cols / nHeads;
  const half = headDim / 2;
  const out = (w instanceof Float32Array ? new Float32Array(w.length) : new Uint8Array(w.length)) as T;
  const copyRow = (from: number, to: number) => out.set(w.subarray(from * cols, (from + 1) * cols), to * cols);
  for (let h = 0; h < nHeads; h++) {
    const base = h * headDim;
    for (let i = 0; i < half; i++) {
      const [hfEven, hfOdd, canonicalEven, canonicalOdd] = [base + i, base + half + i, base + 2 * i, base + 2 * i + 1];
      if (direction === "to-canonical") {
        copyRow(hfEven, canonicalEven);
        copyRow(hfOdd, canonicalOdd);
      } else {
        copyRow(canonicalEven, hfEven);
        copyRow(canonicalOdd, hfOdd);
      }
    }
  }
  return out;
}
