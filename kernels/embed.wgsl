// embed: token embedding gather.
//
// Contract
//   w      [rowCount, K4] rows of the embedding in any weight format (kernels/weights/): the rows
//          rowStart .. rowStart + rowCount - 1 of the full [vocab, dim] table. Large tables are split into
//          chunks of rows (one binding each must stay under the device's storage binding limit); the host
//          dispatches this kernel once per chunk and each dispatch fills the rows whose token is in its chunk.
//          Each row is padded with zeros to K4 vec4s (dim rounded up to a multiple of 4).
//   tokens [T] u32 token ids.
//   out    [T, K4] vec4 rows (f32): out[r] = w[tokens[r] - rowStart] * scale when that token is in this
//          chunk; rows of other chunks are left untouched. scale is 1, or Gemma's sqrt(dim) (a float32).
// Dispatch: (ceil(K4 / 64), T).

struct Params { T: u32, K4: u32, rowStart: u32, rowCount: u32, scale: f32, sOff: u32 }
@group(0) @binding(0) var<uniform> p: Params;
//#weights 1
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (c >= p.K4 || r >= p.T) { return; }
  let token = tokens[r];
  if (token < p.rowStart || token >= p.rowStart + p.rowCount) { return; }
  out[r * p.K4 + c] = wload(token - p.rowStart, c) * p.scale;
}
