// sgmv-shrink: the first half of segmented LoRA (SGMV, as in Punica; S-LoRA's MBGMV): v = x A^T per segment.
//
// A step's rows are ordered so that rows of the same adapter slot are contiguous. The host cuts the rows that
// have an adapter into tiles of at most 16 consecutive rows of one slot (ops.ts buildTiles; rows without adapter
// are in no tile, so they skip both kernels; a segment of one row is one tile):
//   tiles [nTiles] vec4<u32> (rowStart, rowCount 1..16, slot, 0).
// One dispatch serves a group of LoRA targets that read the same input (q|k|v, o, gate|up or down):
//   x     [*, ldx4] vec4 f32 rows, the targets' common input (K4 = inP/4 vec4s, zero-padded past the input width).
//   a     [slots, J, K4] vec4 f32: each slot's A matrices of the group stacked, J = targets * rs rows, where rs is the
//         slot rank rounded up to 4; target t of the group owns rows t * rs .. t * rs + rank - 1 (zero beyond).
//   ranks [slots, nLayers, 7] u32: the rank of each slot's pair per layer and target (LINEAR_TARGETS order),
//         0 where the adapter leaves that target alone. rankBase = layer * 7 + index of the group's first target.
//   v     [*, ldv] f32: v[row, t * rs + j] = x[row] . a[slot, t * rs + j] for j < rank, 0 for rank <= j < rs.
// Mixed ranks in one batch work: each tile reads its own slot's ranks. Each invocation computes one v column
// for the rows of its tile, 4 at a time, so an A row is read once per 4 rows (sgmv-shrink-segment.wgsl, the
// variant for GPUs, reads it once per tile).
// Dispatch: (ceil(nTiles * J / 64)); invocation i handles tile i / J, column i % J.
struct Params { nTiles: u32, J: u32, rs: u32, K4: u32, ldx4: u32, ldv: u32, rankBase: u32, rankStride: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> tiles: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> ranks: array<u32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x;
  if (id >= p.nTiles * p.J) { return; }
  let tile = tiles[id / p.J];
  let j = id % p.J;
  let row0 = tile.x;
  let count = tile.y;
  let slot = tile.z;
  let rank = ranks[slot * p.rankStride + p.rankBase + j / p.rs];
  if (j % p.rs >= rank) {
    for (var r = 0u; r < count; r++) { v[(row0 + r) * p.ldv + j] = 0.0; }
    return;
  }
  let ao = (slot * p.J + j) * p.K4;
  for (var g = 0u; g < count; g += 4u) {
    let rows = min(4u, count - g);
    let xa = (row0 + g) * p.ldx4;
    var acc = vec4<f32>(0.0);
    if (rows == 1u) {
      // A one-row segment (every row of a batch of distinct adapters): no work on absent rows.
      var s = 0.0;
      for (var k = 0u; k < p.K4; k++) { s += dot(x[xa + k], a[ao + k]); }
      acc.x = s;
    } else {
      let xb = (row0 + g + min(1u, rows - 1u)) * p.ldx4;
      let xc = (row0 + g + min(2u, rows - 1u)) * p.ldx4;
      let xd = (row0 + g + min(3u, rows - 1u)) * p.ldx4;
      for (var k = 0u; k < p.K4; k++) {
        let av = a[ao + k];
        acc += vec4<f32>(dot(x[xa + k], av), dot(x[xb + k], av), dot(x[xc + k], av), dot(x[xd + k], av));
      }
    }
    for (var r = 0u; r < rows; r++) { v[(row0 + g + r) * p.ldv + j] = acc[r]; }
  }
}
