// The attention kernels' shared part (attention.wgsl and attention-split.wgsl put it at their `//#attention-core`
// line): their parameters, the bindings 0..6, and the online softmax of one (row, head) over a range of its
// positions. HEAD_DIM is substituted by the host when it builds the pipeline. nParts and partLen are used by
// attention-split.wgsl only.
const HEAD_DIM: u32 = 8u;

struct Params {
  T: u32, nHeads: u32, group: u32, kvDim: u32, ldq: u32, ldo: u32, blockSize: u32, scale: f32, softcap: f32,
  window: u32, nParts: u32, partLen: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kPool: array<f32>;
@group(0) @binding(3) var<storage, read> vPool: array<f32>;
@group(0) @binding(4) var<storage, read> positions: array<u32>;
@group(0) @binding(5) var<storage, read> tables: array<u32>;
@group(0) @binding(6) var<storage, read> blocks: array<u32>;

/** tanh without exp overflow for large |x| (the soft-capped scores may be large). */
fn stableTanh(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}

/** The running max m of the scores, the sum l of exp(score - m), and acc = the sum of exp(score - m) v. */
struct Softmax { m: f32, l: f32, acc: array<f32, HEAD_DIM> }

/** The first position row r attends to (its sliding window's start, 0 without window). */
fn firstPosition(last: u32) -> u32 {
  if (p.window > 0u && last + 1u > p.window) { return last + 1u - p.window; }
  return 0u;
}

/** Row r, query head h, over positions t0 .. t1 (none when t0 > t1: m = -3e38, l = 0). */
fn attend(r: u32, h: u32, t0: u32, t1: u32) -> Softmax {
  let kvCol = (h / p.group) * HEAD_DIM;
  var qv: array<f32, HEAD_DIM>;
  var st: Softmax;
  let qo = r * p.ldq + h * HEAD_DIM;
  for (var d = 0u; d < HEAD_DIM; d++) {
    qv[d] = q[qo + d] * p.scale;
    st.acc[d] = 0.0;
  }
  let table = tables[r];
  st.m = -3.0e38;
  st.l = 0.0;
  for (var t = t0; t <= t1; t++) {
    let row = blocks[table + t / p.blockSize] * p.blockSize + t % p.blockSize;
    let base = row * p.kvDim + kvCol;
    var s = 0.0;
    for (var d = 0u; d < HEAD_DIM; d++) { s += qv[d] * kPool[base + d]; }
    if (p.softcap > 0.0) { s = p.softcap * stableTanh(s / p.softcap); }
    if (s > st.m) {
      let correction = exp(st.m - s);
      st.l *= correction;
      for (var d = 0u; d < HEAD_DIM; d++) { st.acc[d] *= correction; }
      st.m = s;
    }
    let weight = exp(s - st.m);
    st.l += weight;
    for (var d = 0u; d < HEAD_DIM; d++) { st.acc[d] += weight * vPool[base + d]; }
  }
  return st;
}
