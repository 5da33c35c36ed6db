// Weights as ggml Q6_K, split on upload into two regions of one buffer (the same bytes as the file's blocks):
//   words 0 ..          per block 52 words: ql (128 bytes of low nibbles), qh (64 bytes of 2-bit pairs), the 16
//                       int8 scales of its sub-blocks of 16
//   words p.sOff ..     the f16 d of every block, two a word
// Element e = 128 n + 32 g + l (n half, g quarter 0..3, l 0..31): q = nibble (g >= 2: high) of ql[64 n + 32 (g & 1)
// + l] | bits 2g.. of qh[32 n + l] << 4; x = d * scales[8 n + l / 16 + 2 g] * (q - 32).
@group(0) @binding(WB) var<storage, read> w: array<u32>;
fn wload(row: u32, k: u32) -> vec4<f32> {
  let blk = row * (p.K4 / 64u) + k / 64u;
  let base = blk * 52u;
  let kb = k % 64u;
  let n = kb / 32u;
  let g = (kb % 32u) / 8u;
  let l = 4u * (kb % 8u);
  let lo = (w[base + (64u * n + 32u * (g & 1u) + l) / 4u] >> (4u * (g / 2u))) & 0x0f0f0f0fu;
  let hb = (w[base + 32u + (32u * n + l) / 4u] >> (2u * g)) & 0x03030303u;
  let q = lo | (hb << 4u);
  let si = 8u * n + l / 16u + 2u * g;
  let sc = f32((i32(w[base + 48u + si / 4u] << (24u - 8u * (si % 4u)))) >> 24u);
  let d = unpack2x16float(w[p.sOff + blk / 2u])[blk % 2u];
  let v = vec4<f32>(vec4<u32>(q & 0xffu, (q >> 8u) & 0xffu, (q >> 16u) & 0xffu, q >> 24u)) - 32.0;
  return d * sc * v;
}
