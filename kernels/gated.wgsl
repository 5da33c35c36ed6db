// gated: the gated MLP's activation, out[r, c] = act(gate[r, c]) * up[r, c], act chosen by the constant GELU:
//   0: SwiGLU, act = silu(g) = g / (1 + exp(-g));
//   1: GeGLU, act = gelu_tanh(g) with PyTorch's tanh approximation (Gemma's gelu_pytorch_tanh):
//      0.5 g (1 + tanh(t)), t = sqrt(2/pi) (g + 0.044715 g^3), computed as the equal g / (1 + exp(-2t)), which
//      neither cancels (1 + tanh near -1) nor overflows to NaN.
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

const GELU: u32 = 0u;

fn act(g: f32) -> f32 {
  if (GELU != 0u) {
    let t = 0.7978845608028654 * (g + 0.044715 * g * g * g);
    return g / (1.0 + exp(-2.0 * t));
  }
  return g / (1.0 + exp(-g));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (c >= p.hidden || r >= p.T) { return; }
  out[r * p.ldOut + c] = act(gu[r * p.ldIn + c]) * gu[r * p.ldIn + p.upOff + c];
}
