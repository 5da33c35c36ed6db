// sgmv-shrink-segment: sgmv-shrink.wgsl for GPUs; each adapter's A is read once per segment (Punica's SGMV shrink).
//
// Contract (x, a, ranks, v, rs, J and the target group exactly as in sgmv-shrink.wgsl)
//   tiles [nTiles] vec4<u32> (rowStart, rowCount 1..16, slot, 0): segments, i.e. runs of consecutive rows of one
//         adapter slot, cut every 16 rows (ops.ts buildTiles, SEGMENT_ROWS); rows without adapter are in none.
//   v     [*, ldv] f32: v[row, j] = x[row] . a[slot, j] for j % rs < rank of j's target, 0 for the rest.
// A workgroup computes a 16-column tile of v (16 rows of A) for every row of one segment, the GEMM
// [count, K] x [K, 16] in steps of 16 vec4s along K: it stages the A tile and the segment's x rows in workgroup
// memory (8 KiB), then each invocation accumulates one column for 4 of the rows. Every A element is read from
// memory once per segment, whatever the segment's length (sgmv-shrink.wgsl reads it once per 4 rows).
// Dispatch: (ceil(J / 16), nTiles).
struct Params { nTiles: u32, J: u32, rs: u32, K4: u32, ldx4: u32, ldv: u32, rankBase: u32, rankStride: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> tiles: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> ranks: array<u32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

const JT: u32 = 16u; // columns of v (rows of A) per workgroup
const RT: u32 = 16u; // rows of a segment at most
const KC: u32 = 16u; // vec4s of K per stage
var<workgroup> aTile: array<vec4<f32>, 256>; // [JT][KC]
var<workgroup> xTile: array<vec4<f32>, 256>; // [RT][KC]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tile = tiles[wid.y];
  let row0 = tile.x;
  let count = tile.y;
  let slot = tile.z;
  let jBase = wid.x * JT;
  let jl = lid % JT; // this invocation's column in the tile
  let rq = lid / JT; // and its rows: rq, rq + 4, rq + 8, rq + 12
  var acc = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < p.K4; k0 += KC) {
    // Stage 4 vec4s of A and 4 of x per invocation; past J, past the segment's rows or past K4: zeros.
    for (var s = 0u; s < 4u; s++) {
      let e = lid + 64u * s;
      let r = e / KC;
      let k = k0 + e % KC;
      var av = vec4<f32>(0.0);
      var xv = vec4<f32>(0.0);
      if (k < p.K4) {
        if (jBase + r < p.J) { av = a[(slot * p.J + jBase + r) * p.K4 + k]; }
        if (r < count) { xv = x[(row0 + r) * p.ldx4 + k]; }
      }
      aTile[e] = av;
      xTile[e] = xv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < KC; kk++) {
      let av = aTile[jl * KC + kk];
      acc += vec4<f32>(
        dot(xTile[rq * KC + kk], av),
        dot(xTile[(rq + 4u) * KC + kk], av),
        dot(xTile[(rq + 8u) * KC + kk], av),
        dot(xTile[(rq + 12u) * KC + kk], av),
      );
    }
    workgroupBarrier();
  }
  let j = jBase + jl;
  if (j >= p.J) { return; }
  let inRank = j % p.rs < ranks[slot * p.rankStride + p.rankBase + j / p.rs];
  for (var i = 0u; i < 4u; i++) {
    let r = rq + 4u * i;
    if (r < count) { v[(row0 + r) * p.ldv + j] = select(0.0, acc[i], inRank); }
  }
}
