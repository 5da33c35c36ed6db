// head-rmsnorm: RMSNorm of each attention head over its headDim values, in place (Qwen3's q_norm and k_norm,
// applied before RoPE): x[r, off + h*headDim + d] = x[...] / sqrt(mean over d of x[...]^2 + eps) * weight[d].
//
// Contract
//   x      [T, ld] f32 rows, updated in place: heads h = 0 .. heads - 1 of headDim values starting at column off
//          (the q heads at 0, or the k heads at qDim, of the fused q|k|v output). Other columns are untouched.
//   weight [headDim] f32, the same for every head.
// Dispatch: (heads, T) workgroups of 64; one head of one row per workgroup.
struct Params { T: u32, ld: u32, off: u32, headDim: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = wid.y * p.ld + p.off + wid.x * p.headDim;
  var ss = 0.0;
  for (var d = lid; d < p.headDim; d += 64u) {
    let v = x[base + d];
    ss += v * v;
  }
  partial[lid] = ss;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(partial[0] / f32(p.headDim) + p.eps);
  for (var d = lid; d < p.headDim; d += 64u) {
    x[base + d] = weight[d] * (x[base + d] * inv);
  }
}
