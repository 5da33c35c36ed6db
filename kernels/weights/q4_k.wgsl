// Weights as ggml Q4_K, the file's blocks as they are (144 bytes = 36 words, all fields word-aligned):
//   word 0 f16 d | f16 dmin; words 1-3 the 12 bytes of 6-bit scales and mins of the 8 sub-blocks of 32;
//   words 4-35 the 128 bytes of nibbles: sub-block pair j (elements 64j ..) in bytes 32j .. 32j + 31, the
//   first 32 elements in the low nibbles, the next 32 in the high ones.
// x = d * scale * q - dmin * min. A row has K4 / 64 blocks; vec4 k covers elements 4 (k % 64) .. of block k / 64.
@group(0) @binding(WB) var<storage, read> w: array<u32>;
fn q4kByte(base: u32, i: u32) -> u32 { return (w[base + 1u + i / 4u] >> (8u * (i % 4u))) & 0xffu; }
fn wload(row: u32, k: u32) -> vec4<f32> {
  let base = (row * (p.K4 / 64u) + k / 64u) * 36u;
  let kb = k % 64u;
  let j = kb / 16u; // pair of sub-blocks
  let hi = (kb % 16u) / 8u; // second sub-block of the pair: high nibbles
  let s = 2u * j + hi; // sub-block 0..7 (ggml's get_scale_min_k4)
  var sc: u32;
  var mn: u32;
  if (s < 4u) {
    sc = q4kByte(base, s) & 63u;
    mn = q4kByte(base, s + 4u) & 63u;
  } else {
    sc = (q4kByte(base, s + 4u) & 15u) | ((q4kByte(base, s - 4u) >> 6u) << 4u);
    mn = (q4kByte(base, s + 4u) >> 4u) | ((q4kByte(base, s) >> 6u) << 4u);
  }
  let dm = unpack2x16float(w[base]);
  let q = (w[base + 4u + 8u * j + kb % 8u] >> (4u * hi)) & 0x0f0f0f0fu;
  let v = vec4<f32>(vec4<u32>(q & 0xffu, (q >> 8u) & 0xffu, (q >> 16u) & 0xffu, q >> 24u));
  return dm.x * f32(sc) * v - dm.y * f32(mn);
}
