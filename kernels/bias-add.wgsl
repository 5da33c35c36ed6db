// bias-add: y[r, c] += bias[c] for the first N columns of every row (Qwen2's q|k|v projection biases).
//
// Contract
//   y    [T, ld] f32 rows, updated in place; columns N .. ld - 1 are untouched.
//   bias [N] f32 (for the fused q|k|v output: q bias, then k bias, then v bias).
// Dispatch: (ceil(N / 64), T).
struct Params { T: u32, N: u32, ld: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (c >= p.N || r >= p.T) { return; }
  y[r * p.ld + c] += bias[c];
}
