// rope: rotary position embedding in the canonical basis (llama2.c interleaved pairs), in place.
//
// Contract
//   x        [T, ld] f32 rows; the first heads * headDim columns are rotated: the q heads followed by the k heads
//            (the fused q|k|v projection output keeps them contiguous). Head h's pair (2i, 2i+1) at row r turns
//            by the angle positions[r] * theta^(-2i / headDim).
//   positions [T] u32 absolute position of each row.
//   table    [maxSeqLen, headDim / 2] vec2 (cos, sin) of those angles, computed once on the host in double
//            precision (the reference's formula), so the GPU adds no trigonometric error.
// Dispatch: (ceil(heads * headDim / 2 / 64), T).
struct Params { T: u32, ld: u32, heads: u32, half: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> table: array<vec2<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let pair = gid.x; // over heads * half
  let r = gid.y;
  if (pair >= p.heads * p.half || r >= p.T) { return; }
  let i = pair % p.half;
  let cs = table[positions[r] * p.half + i];
  let at = r * p.ld + 2u * pair;
  let a = x[at];
  let b = x[at + 1u];
  x[at] = a * cs.x - b * cs.y;
  x[at + 1u] = a * cs.y + b * cs.x;
}
