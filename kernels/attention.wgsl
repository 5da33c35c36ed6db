// attention: causal grouped-query attention of a step's rows over a PAGED KV cache (prefill and decode alike).
//
// Contract
//   q        [T, ldq] f32 rows: query head h at columns h * HEAD_DIM .. (h+1) * HEAD_DIM - 1 (after RoPE).
//   kPool, vPool [numBlocks * blockSize, kvDim] f32: one layer's pools, already holding this step's rows.
//   positions [T] u32: absolute position of each row; row r attends to positions 0 .. positions[r] of its
//            own sequence (the causal mask, for a prefill chunk and for a decode row alike).
//   tables   [T] u32: offset of the row's sequence's block table in blocks; position t of that sequence lives
//            in pool row blocks[tables[r] + t / blockSize] * blockSize + t % blockSize.
//   blocks   u32: the block tables of the step's sequences, concatenated.
//   out      [T, ldo] f32: head h at columns h * HEAD_DIM ...
// Query head h reads kv head h / (nHeads / nKvHeads). A score is q·k x scale (1/sqrt(HEAD_DIM), or Gemma 2's
// query_pre_attn_scalar^-0.5), then softcap x tanh(score / softcap) when softcap > 0 (Gemma 2). With window > 0
// row r attends to positions positions[r] - window + 1 .. positions[r] only (sliding-window layers). The softmax
// is computed online (running max and sum) in one pass over the positions.
// HEAD_DIM is substituted by the host when it builds the pipeline.
// Dispatch: (ceil(T * nHeads / 64)); invocation r * nHeads + h handles row r, head h.
const HEAD_DIM: u32 = 8u;

struct Params {
  T: u32, nHeads: u32, group: u32, kvDim: u32, ldq: u32, ldo: u32, blockSize: u32, scale: f32, softcap: f32, window: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kPool: array<f32>;
@group(0) @binding(3) var<storage, read> vPool: array<f32>;
@group(0) @binding(4) var<storage, read> positions: array<u32>;
@group(0) @binding(5) var<storage, read> tables: array<u32>;
@group(0) @binding(6) var<storage, read> blocks: array<u32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

/** tanh without exp overflow for large |x| (the soft-capped scores may be large). */
fn stableTanh(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x;
  if (id >= p.T * p.nHeads) { return; }
  let r = id / p.nHeads;
  let h = id % p.nHeads;
  let kvCol = (h / p.group) * HEAD_DIM;
  var qv: array<f32, HEAD_DIM>;
  var acc: array<f32, HEAD_DIM>;
  let qo = r * p.ldq + h * HEAD_DIM;
  for (var d = 0u; d < HEAD_DIM; d++) {
    qv[d] = q[qo + d] * p.scale;
    acc[d] = 0.0;
  }
  let last = positions[r];
  let table = tables[r];
  var m = -3.0e38;
  var l = 0.0;
  var first = 0u;
  if (p.window > 0u && last + 1u > p.window) { first = last + 1u - p.window; }
  for (var t = first; t <= last; t++) {
    let row = blocks[table + t / p.blockSize] * p.blockSize + t % p.blockSize;
    let base = row * p.kvDim + kvCol;
    var s = 0.0;
    for (var d = 0u; d < HEAD_DIM; d++) { s += qv[d] * kPool[base + d]; }
    if (p.softcap > 0.0) { s = p.softcap * stableTanh(s / p.softcap); }
    if (s > m) {
      let correction = exp(m - s);
      l *= correction;
      for (var d = 0u; d < HEAD_DIM; d++) { acc[d] *= correction; }
      m = s;
    }
    let weight = exp(s - m);
    l += weight;
    for (var d = 0u; d < HEAD_DIM; d++) { acc[d] += weight * vPool[base + d]; }
  }
  let oo = r * p.ldo + h * HEAD_DIM;
  let inv = 1.0 / l;
  for (var d = 0u; d < HEAD_DIM; d++) { out[oo + d] = acc[d] * inv; }
}
