// The reference operators of the forward pass, on float32 arrays, written to be read, not to be fast.
// Every other backend is held to these. Matrices are row-major; weights are [out, in] as everywhere in the engine.

/** out[r, :] = x[r, :] / rms(x[r, :]) * weight, for rows r. out may be x (each row is read before it is written). */
export function rmsnorm(
  out: Float32Array,
  x: Float32Array,
  weight: Float32Array,
  rows: number,
  dim: number,
  eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i] * x[o + i];
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[o + i] = weight[i] * (x[o + i] * inv);
  }
}

/** out[r, j] = sum_i x[r, i] * w[j, i]: rows of x times the [outDim, inDim] weight, transposed. */
export function matmul(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  rows: number,
  inDim: number,
  outDim: number,
): void {
  for (let r = 0; r < rows; r++) {
    const xo = r * inDim;
    for (let j = 0; j < outDim; j++) {
      const wo = j * inDim;
      let sum = 0;
      for (let i = 0; i < inDim; i++) sum += x[xo + i] * w[wo + i];
      out[r * outDim + j] = sum;
    }
  }
}

/** y[i] += x[i]. */
export function addInto(y: Float32Array, x: Float32Array): void {
  for (let i = 0; i < y.length; i++) y[i] += x[i];
}

/** y[r, c] += bias[c] for every row r of y [rows, bias.length]. */
export function addBias(y: Float32Array, bias: Float32Array): void {
  for (let at = 0; at < y.length; at += bias.length) {
    for (let c = 0; c < bias.length; c++) y[at + c] += bias[c];
  }
}

/** y = cap * tanh(y / cap), elementwise (Gemma 2's soft-capping of attention scores and logits). */
export function softcap(y: Float32Array, cap: number): void {
  for (let i = 0; i < y.length; i++) y[i] = cap * Math.tanh(y[i] / cap);
}

/**
 * Rotary position embedding in the canonical basis (llama2.c): inside each head of headDim, the pair
 * (2i, 2i+1) of row r turns by positions[r] * theta^(-2i/headDim), or by positions[r] * inverseFrequencies[i]
 * when the model's frequencies are given (model/rope.ts: Llama 3 scaling). x is [rows, nHeads * headDim].
 */
export function rope(
  x: Float32Array,
  positions: readonly number[],
  nHeads: number,
  headDim: number,
  theta: number | Float64Array,
): void {
  const width = nHeads * headDim;
  for (let r = 0; r < positions.length; r++) {
    for (let h = 0; h < nHeads; h++) {
      for (let i = 0; i < headDim; i += 2) {
        const angle = positions[r] * (typeof theta === "number" ? Math.pow(theta, -i / headDim) : theta[i / 2]);
        const cos = Math.cos(angle);
        const sin = Math.sin(angle);
        const at = r * width + h * headDim + i;
        const a = x[at];
        const b = x[at + 1];
        x[at] = a * cos - b * sin;
        x[at + 1] = a * sin + b * cos;
      }
    }
  }
}

/** out[i] = silu(gate[i]) * up[i], the SwiGLU activation. */
export function swiglu(out: Float32Array, gate: Float32Array, up: Float32Array): void {
  for (let i = 0; i < out.length; i++) {
    const g = gate[i];
    out[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

const GELU_TANH_K = Math.sqrt(2 / Math.PI);

/** out[i] = gelu_tanh(gate[i]) * up[i], GeGLU with PyTorch's tanh approximation (gelu_pytorch_tanh). */
export function geglu(out: Float32Array, gate: Float32Array, up: Float32Array): void {
  for (let i = 0; i < out.length; i++) {
    const g = gate[i];
    out[i] = 0.5 * g * (1 + Math.tanh(GELU_TANH_K * (g + 0.044715 * g * g * g))) * up[i];
  }
}

/** Where one KV pool keeps one layer: [numBlocks, blockSize, kvDim], position p at block table[p / blockSize]. */
export interface PagedKv {
  k: Float32Array;
  v: Float32Array;
  /** Float offset of this layer's pool inside k and v. */
  layerOffset: number;
  blockSize: number;
  kvDim: number;
}

/** Float offset of position p's row in a paged pool. */
export function kvRow(kv: PagedKv, blockTable: readonly number[], p: number): number {
  const block = blockTable[Math.floor(p / kv.blockSize)];
  return kv.layerOffset + (block * kv.blockSize + (p % kv.blockSize)) * kv.kvDim;
}

/** How attention scores are formed: scale (default 1/sqrt(headDim)), soft-cap (0: none), sliding window (0: none). */
export interface AttentionOptions {
  scale?: number;
  softcap?: number;
  /** Position p attends to p - window + 1 .. p only (transformers masks kv positions <= p - window). */
  window?: number;
}

/**
 * Causal grouped-query attention of one sequence's new rows over its paged cache (which already holds the
 * new rows' K/V). q is [rows, nHeads * headDim] for positions position .. position + rows - 1; query head h
 * reads kv head floor(h / (nHeads / nKvHeads)). A score is q·k x scale, soft-capped when asked (Gemma 2:
 * cap * tanh(score / cap), before the mask and the softmax). Writes out [rows, nHeads * headDim].
 */
export function pagedAttention(
  out: Float32Array,
  q: Float32Array,
  kv: PagedKv,
  blockTable: readonly number[],
  position: number,
  rows: number,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  options: AttentionOptions = {},
): void {
  const group = nHeads / nKvHeads;
  const scale = options.scale ?? 1 / Math.sqrt(headDim);
  const cap = options.softcap ?? 0;
  const window = options.window ?? 0;
  const scores = new Float32Array(position + rows);
  for (let r = 0; r < rows; r++) {
    const length = position + r + 1; // causal: row r sees positions 0 .. position + r
    const first = window > 0 ? Math.max(0, length - window) : 0;
    for (let h = 0; h < nHeads; h++) {
      const qo = r * nHeads * headDim + h * headDim;
      const kvHead = Math.floor(h / group) * headDim;
      let max = -Infinity;
      for (let t = first; t < length; t++) {
        const ko = kvRow(kv, blockTable, t) + kvHead;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qo + d] * kv.k[ko + d];
        scores[t] = cap > 0 ? cap * Math.tanh((dot * scale) / cap) : dot * scale;
        if (scores[t] > max) max = scores[t];
      }
      let sum = 0;
      for (let t = first; t < length; t++) {
        scores[t] = Math.exp(scores[t] - max);
        sum += scores[t];
      }
      out.fill(0, qo, qo + headDim);
      for (let t = first; t < length; t++) {
        const vo = kvRow(kv, blockTable, t) + kvHead;
        const weight = scores[t] / sum;
        for (let d = 0; d < headDim; d++) out[qo + d] += weight * kv.v[vo + d];
      }
    }
  }
}
