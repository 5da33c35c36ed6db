// sgmv-expand-segment: sgmv-expand.wgsl for GPUs; each adapter's B is read once per segment (Punica's SGMV expand).
//
// Contract (v, b, ranks, y, rs and the target group exactly as in sgmv-expand.wgsl; tiles are the segments of
// sgmv-shrink-segment.wgsl, up to 16 rows)
//   RS4 = rs / 4, substituted by the host when it builds the pipeline.
//   y   [*, ldy] f32: y[row, yOff + n] += v[row, t] . b[slot, n] for every row of each segment.
// Each invocation owns one output column n: it loads its B row (RS4 vec4s) into registers once, then walks the
// segment's rows, whose v rows are the same address for the whole workgroup (a broadcast). The loop runs to RS4
// whatever the rank, so the compiler can keep the B row in registers: B is zero-padded from rank to rs columns
// and the shrink writes zeros there, so the extra terms add 0. Segments hold disjoint rows: no two invocations
// write the same element.
// Dispatch: (ceil(N / 64), nTiles).
struct Params {
  nTiles: u32, N: u32, rs4: u32, ldv4: u32, ldy: u32, yOff: u32, b1: u32, b2: u32, rankBase: u32, rankStride: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> tiles: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> ranks: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

const RS4: u32 = 4u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.x;
  if (n >= p.N || gid.y >= p.nTiles) { return; }
  let tile = tiles[gid.y];
  let row0 = tile.x;
  let count = tile.y;
  let slot = tile.z;
  let t = select(0u, 1u, n >= p.b1) + select(0u, 1u, n >= p.b2);
  if (ranks[slot * p.rankStride + p.rankBase + t] == 0u) { return; }
  var bRow: array<vec4<f32>, RS4>;
  let bo = (slot * p.N + n) * RS4;
  for (var j = 0u; j < RS4; j++) { bRow[j] = b[bo + j]; }
  let vo = t * RS4;
  for (var r = 0u; r < count; r++) {
    let va = (row0 + r) * p.ldv4 + vo;
    var s = 0.0;
    for (var j = 0u; j < RS4; j++) { s += dot(v[va + j], bRow[j]); }
    y[(row0 + r) * p.ldy + p.yOff + n] += s;
  }
}
