// attention-reduce: merges attention-split.wgsl's partitions of each (row, head) into the attention output.
//
// Contract
//   partials [T, nHeads, nParts, HEAD_DIM + 2] f32 as attention-split.wgsl writes them (m, l, acc per partition).
//   out      [T, ldo] f32: head h at columns h * HEAD_DIM ..., = sum_i exp(m_i - M) acc_i / sum_i exp(m_i - M) l_i
//            with M = max_i m_i (empty partitions weigh exp(-3e38 - M) = 0; every row has a nonempty one).
// HEAD_DIM is substituted by the host when it builds the pipeline.
// Dispatch: (ceil(T * nHeads / 64)); invocation r * nHeads + h handles row r, head h.
const HEAD_DIM: u32 = 8u;

struct Params { T: u32, nHeads: u32, nParts: u32, ldo: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x;
  if (id >= p.T * p.nHeads) { return; }
  let base = id * p.nParts * (HEAD_DIM + 2u);
  var m = -3.0e38;
  for (var i = 0u; i < p.nParts; i++) { m = max(m, partials[base + i * (HEAD_DIM + 2u)]); }
  var l = 0.0;
  var acc: array<f32, HEAD_DIM>;
  for (var d = 0u; d < HEAD_DIM; d++) { acc[d] = 0.0; }
  for (var i = 0u; i < p.nParts; i++) {
    let o = base + i * (HEAD_DIM + 2u);
    let w = exp(partials[o] - m);
    l += w * partials[o + 1u];
    for (var d = 0u; d < HEAD_DIM; d++) { acc[d] += w * partials[o + 2u + d]; }
  }
  let r = id / p.nHeads;
  let h = id % p.nHeads;
  let oo = r * p.ldo + h * HEAD_DIM;
  let inv = 1.0 / l;
  for (var d = 0u; d < HEAD_DIM; d++) { out[oo + d] = acc[d] * inv; }
}
