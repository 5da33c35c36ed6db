// embed: token embedding gather.
//
// Contract
//   table  [rowCount, ld4] vec4 rows of the embedding (f32, or f16 when WT is f16): the rows
//          rowStart .. rowStart + rowCount - 1 of the full [vocab, dim] table. Large tables are split into
//          chunks of rows (one binding each must stay under the device's storage binding limit); the host
//          dispatches this kernel once per chunk and each dispatch fills the rows whose token is in its chunk.
//          Each row is padded with zeros to ld4 vec4s (dim rounded up to a multiple of 4).
//   tokens [T] u32 token ids.
//   out    [T, ld4] vec4 rows (f32): out[r] = table[tokens[r] - rowStart] * scale when that token is in this
//          chunk; rows of other chunks are left untouched. scale is 1, or Gemma's sqrt(dim) (a float32).
// Dispatch: (ceil(ld4 / 64), T).
alias WT = f32; // the host substitutes f16 for half-precision weights

struct Params { T: u32, ld4: u32, rowStart: u32, rowCount: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<vec4<WT>>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (c >= p.ld4 || r >= p.T) { return; }
  let token = tokens[r];
  if (token < p.rowStart || token >= p.rowStart + p.rowCount) { return; }
  out[r * p.ld4 + c] = vec4<f32>(table[(token - p.rowStart) * p.ld4 + c]) * p.scale;
}
