// Weights as float32: [rows, K4] vec4 rows, zero-padded to 4 * K4 columns.
@group(0) @binding(WB) var<storage, read> w: array<vec4<f32>>;
fn wload(row: u32, k: u32) -> vec4<f32> { return w[row * p.K4 + k]; }
