// rmsnorm: out[i, :] (+)= x[src(i), :] / sqrt(mean(x[src(i), :]^2) + eps) * weight
//
// Contract
//   x      [*, ldx] f32 rows; only the first dim columns are read.
//   weight [dim] f32.
//   rows   [R] u32: when gather is 1, output row i normalizes input row rows[i] (the final norm of each
//          sequence's last row); when gather is 0, output row i normalizes input row i and rows is unused.
//   out    [R, ldo] f32; columns dim .. ldo - 1 are not written (they stay zero). With accumulate 1 the
//          normed row is added to out (Gemma 2's post-norms: x += norm(attention output)), else it replaces it.
//   x and out must be different buffers.
// Dispatch: (R) workgroups of 64; one row per workgroup.
struct Params { R: u32, dim: u32, ldx: u32, ldo: u32, eps: f32, gather: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> rows: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = wid.x;
  var src = i;
  if (p.gather != 0u) { src = rows[i]; }
  let xo = src * p.ldx;
  var ss = 0.0;
  for (var c = lid; c < p.dim; c += 64u) {
    let v = x[xo + c];
    ss += v * v;
  }
  partial[lid] = ss;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  let inv = 1.0 / sqrt(partial[0] / f32(p.dim) + p.eps);
  let oo = i * p.ldo;
  for (var c = lid; c < p.dim; c += 64u) {
    let normed = weight[c] * (x[xo + c] * inv);
    if (p.accumulate != 0u) { out[oo + c] += normed; } else { out[oo + c] = normed; }
  }
}
