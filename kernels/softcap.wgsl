// softcap: y = cap * tanh(y / cap) on the first N columns of every row, in place (Gemma 2's final logit
// soft-capping, applied to the logits before they are read back or sampled).
//
// Contract
//   y [R, ld] f32 rows; columns N .. ld - 1 are untouched. cap > 0.
// Dispatch: (ceil(N / 64), R).
struct Params { R: u32, N: u32, ld: u32, cap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

/** tanh without exp overflow for large |x|. */
fn stableTanh(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (c >= p.N || r >= p.R) { return; }
  let at = r * p.ld + c;
  y[at] = p.cap * stableTanh(y[at] / p.cap);
}
