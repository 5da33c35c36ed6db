// Weights as IEEE half: [rows, K4] rows of 4 halves (two u32), zero-padded to 4 * K4 columns. unpack2x16float
// needs no shader-f16 feature, so every adapter reads them.
@group(0) @binding(WB) var<storage, read> w: array<vec2<u32>>;
fn wload(row: u32, k: u32) -> vec4<f32> {
  let v = w[row * p.K4 + k];
  return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));
}
