// swiglu: out[r, c] = silu(gate[r, c]) * up[r, c], silu(g) = g / (1 + exp(-g)).
//
// Contract
//   gu  [T, ldIn] f32 rows: gate at columns 0 .. hidden - 1, up at columns upOff .. upOff + hidden - 1
//       (the fused gate|up projection output).
//   out [T, ldOut] f32; columns hidden .. ldOut - 1 are not written (they stay zero: the padding that the
//       down projection's vec4 loads read).
// Dispatch: (ceil(hidden / 64), T).
struct Params { T: u32, hidden: u32, ldIn: u32, upOff: u32, ldOut: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (c >= p.hidden || r >= p.T) { return; }
  let g = gu[r * p.ldIn + c];
  let u = gu[r * p.ldIn + p.upOff + c];
  out[r * p.ldOut + c] = g / (1.0 + exp(-g)) * u;
}
