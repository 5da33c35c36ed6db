// Weights as ggml Q4_0, split on upload into two regions of one buffer (the same bytes as the file's blocks):
//   words 0 ..          the 16 bytes of nibbles of every block, 4 words a block: element j in the low nibble of
//                       byte j, element j + 16 in its high nibble
//   words p.sOff ..     the f16 scale d of every block, two a word
// x = d * (q - 8). vec4 k % 8 < 4 takes the low nibbles of word k % 8, else the high nibbles of word k % 8 - 4.
@group(0) @binding(WB) var<storage, read> w: array<u32>;
fn wload(row: u32, k: u32) -> vec4<f32> {
  let blk = row * (p.K4 / 8u) + k / 8u;
  let kk = k % 8u;
  let q = (w[blk * 4u + kk % 4u] >> (4u * (kk / 4u))) & 0x0f0f0f0fu;
  let d = unpack2x16float(w[p.sOff + blk / 2u])[blk % 2u];
  let v = vec4<u32>(q & 0xffu, (q >> 8u) & 0xffu, (q >> 16u) & 0xffu, q >> 24u);
  return d * (vec4<f32>(v) - 8.0);
}
