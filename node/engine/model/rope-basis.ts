/**
 * Hugging Face's Llama conversion permutes the rows of q/k so that "rotate half" RoPE gives the same result as
 * llama2.c's interleaved pairs: inside each head, row 2i goes to i and row 2i+1 to i + headDim/2.
 * This undoes it: from HF order back to the canonical interleaved order. Works on any [nHeads*headDim, cols]
 * row-major matrix (base q/k weights, and lora_B of q/k whose rows are output rows too).
 */
export function unpermuteRotateHalfRows(w: Float32Array, nHeads: number, cols: number): Float32Array {
  const rows = w.length / cols;
  const headDim = rows / nHeads;
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      const base = h * headDim;
      // HF row base+i holds canonical row base+2i; HF row base+half+i holds canonical row base+2i+1.
      out.set(w.subarray((base + i) * cols, (base + i + 1) * cols), (base + 2 * i) * cols);
      out.set(w.subarray((base + half + i) * cols, (base + half + i + 1) * cols), (base + 2 * i + 1) * cols);
    }
  }
  return out;
}

/** The inverse of unpermuteRotateHalfRows: canonical interleaved order to HF's rotate-half order. */
export function permuteRotateHalfRows(w: Float32Array, nHeads: number, cols: number): Float32Array {
  const rows = w.length / cols;
  const headDim = rows / nHeads;
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      const base = h * headDim;
      out.set(w.subarray((base + 2 * i) * cols, (base + 2 * i + 1) * cols), (base + i) * cols);
      out.set(w.subarray((base + 2 * i + 1) * cols, (base + 2 * i + 2) * cols), (base + half + i) * cols);
    }
  }
  return out;
}
