// Weights as bfloat16: [rows, K4] rows of 4 values (two u32), zero-padded; a bf16 is the top half of an f32.
@group(0) @binding(WB) var<storage, read> w: array<vec2<u32>>;
fn wload(row: u32, k: u32) -> vec4<f32> {
  let v = w[row * p.K4 + k];
  return vec4<f32>(bitcast<f32>(v.x << 16u), bitcast<f32>(v.x & 0xffff0000u), bitcast<f32>(v.y << 16u),
                   bitcast<f32>(v.y & 0xffff0000u));
}
