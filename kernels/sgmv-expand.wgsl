// sgmv-expand: the second half of segmented LoRA (SGMV): y += v B^T per segment, after sgmv-shrink.
//
// Contract (tiles, ranks, rs and the target group as in sgmv-shrink.wgsl)
//   v   [*, ldv4] vec4 f32: the shrink output; target t of the group at vec4 columns t * rs/4 ...
//   b   [slots, N, rs/4] vec4 f32: each slot's B matrices of the group stacked by output column (scale folded
//       in), zero-padded from rank to rs columns. Output column n belongs to target t = (n >= b1) + (n >= b2):
//       the group's outputs are contiguous, e.g. q|k|v = [0, dim) [dim, dim + kvDim) [dim + kvDim, N).
//   y   [*, ldy] f32: y[row, yOff + n] += v[row, t] . b[slot, n] for the rows of each tile (the projection
//       output the base matmul just wrote, or the residual stream for o and down).
// Tiles hold disjoint rows, so no two invocations write the same element. Each invocation computes one output
// column for the rows of its tile, 4 at a time, so a B row is read once per 4 rows (sgmv-expand-segment.wgsl,
// the variant for GPUs, reads it once per tile).
// Dispatch: (ceil(N / 64), nTiles); invocation (n, tile) handles column n of one tile.
struct Params {
  nTiles: u32, N: u32, rs4: u32, ldv4: u32, ldy: u32, yOff: u32, b1: u32, b2: u32, rankBase: u32, rankStride: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> tiles: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> ranks: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  if (n >= p.N || gid.y >= p.nTiles) { return; }
  let tile = tiles[gid.y];
  let row0 = tile.x;
  let count = tile.y;
  let slot = tile.z;
  let t = select(0u, 1u, n >= p.b1) + select(0u, 1u, n >= p.b2);
  let rank = ranks[slot * p.rankStride + p.rankBase + t];
  if (rank == 0u) { return; }
  let bo = (slot * p.N + n) * p.rs4;
  let vo = t * p.rs4;
  let steps = (rank + 3u) / 4u;
  for (var g = 0u; g < count; g += 4u) {
    let rows = min(4u, count - g);
    let va = (row0 + g) * p.ldv4 + vo;
    var acc = vec4<f32>(0.0);
    if (rows == 1u) {
      var s = 0.0;
      for (var j = 0u; j < steps; j++) { s += dot(v[va + j], b[bo + j]); }
      acc.x = s;
    } else {
      let vb = (row0 + g + min(1u, rows - 1u)) * p.ldv4 + vo;
      let vc = (row0 + g + min(2u, rows - 1u)) * p.ldv4 + vo;
      let vd = (row0 + g + min(3u, rows - 1u)) * p.ldv4 + vo;
      for (var j = 0u; j < steps; j++) {
        let bv = b[bo + j];
        acc += vec4<f32>(dot(v[va + j], bv), dot(v[vb + j], bv), dot(v[vc + j], bv), dot(v[vd + j], bv));
      }
    }
    for (var r = 0u; r < rows; r++) { y[(row0 + g + r) * p.ldy + p.yOff + n] += acc[r]; }
  }
}
