// Weights as ggml Q8_0, split on upload into two regions of one buffer (the same bytes as the file's blocks):
//   words 0 ..          the 32 int8 quants of every block, 8 words a block, blocks in row order
//   words p.sOff ..     the f16 scale d of every block, two a word
// x = d * q. A row has K4 / 8 blocks; vec4 k is word k % 8 of block k / 8.
@group(0) @binding(WB) var<storage, read> w: array<u32>;
fn wload(row: u32, k: u32) -> vec4<f32> {
  let blk = row * (p.K4 / 8u) + k / 8u;
  let q = w[blk * 8u + k % 8u];
  let d = unpack2x16float(w[p.sOff + blk / 2u])[blk % 2u];
  let v = vec4<i32>(i32(q << 24u), i32(q << 16u), i32(q << 8u), i32(q)) >> vec4<u32>(24u);
  return d * vec4<f32>(v);
}
