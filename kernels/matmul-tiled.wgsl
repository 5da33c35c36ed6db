// matmul-tiled: the linear layer for many rows (prefill, large batches) on GPUs, y[m, yOff + n] (+)= x[m, :] . w[n, :]
//
// Contract: the same tensors and parameters as matmul.wgsl.
//   x  [M, ldx4] vec4 f32 rows (K4 = ceil(K/4) vec4s used; columns past K must be zero).
//   w  [N, K4] rows of the weight, [out, in], in any weight format (kernels/weights/<format>.wgsl: wload(row, k)
//      decodes columns 4k .. 4k + 3). A weight above the binding limit is split into row chunks, one dispatch
//      each, yOff = the chunk's first row.
//   y  [M, ldy] f32, columns yOff .. yOff + N - 1 written; accumulate = 1 adds (fused residual add).
// A workgroup of 256 computes a 64 x 64 tile of y (4 rows x 4 outputs per invocation). K goes in steps of 32
// columns: the workgroup stages 64 rows of x and 64 decoded rows of w in workgroup memory (16 KiB), so each
// weight block is read and decoded once per 64 rows of x instead of once per 4. The variant for GPUs; on
// lavapipe, where a barrier switches between every invocation, matmul.wgsl (no workgroup memory) is faster.
// Precision: the stages and each stage's 32-term sums are of type stage4; the sums of the stages are f32. The
// host's halfAccumulate variant (kernels.ts) makes stage4 vec4<f16> (shader-f16): half the workgroup memory and
// f16 arithmetic, at f16's rounding (2^-11 relative) on the inputs and on 32-term partial sums.
// Dispatch: (ceil(N / 64), ceil(M / 64)).

//#linear-io

alias stage4 = vec4<f32>;
const TILE: u32 = 64u; // rows of x and of w per tile
const KS: u32 = 8u; // vec4s of K per stage
var<workgroup> xs: array<stage4, 512>; // [TILE][KS]
var<workgroup> ws: array<stage4, 512>; // [TILE][KS]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let nBase = wid.x * TILE;
  let mBase = wid.y * TILE;
  let tx = lid % 16u; // outputs tx*4 .. tx*4 + 3 of the tile
  let ty = lid / 16u; // rows ty*4 .. ty*4 + 3 of the tile
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < p.K4; k0 += KS) {
    // Stage: 512 vec4 of x and 512 of w, two of each per invocation. Rows past M or N load the last valid row
    // (dropped at the store); K past K4 loads zeros.
    for (var s = 0u; s < 2u; s++) {
      let e = lid + 256u * s;
      let r = e / KS;
      let k = k0 + e % KS;
      var xv = vec4<f32>(0.0);
      var wv = vec4<f32>(0.0);
      if (k < p.K4) {
        xv = x[min(mBase + r, p.M - 1u) * p.ldx4 + k];
        wv = wload(min(nBase + r, p.N - 1u), k);
      }
      xs[e] = stage4(xv);
      ws[e] = stage4(wv);
    }
    workgroupBarrier();
    var s0 = stage4(0.0);
    var s1 = stage4(0.0);
    var s2 = stage4(0.0);
    var s3 = stage4(0.0);
    for (var kk = 0u; kk < KS; kk++) {
      let a0 = xs[(ty * 4u) * KS + kk];
      let a1 = xs[(ty * 4u + 1u) * KS + kk];
      let a2 = xs[(ty * 4u + 2u) * KS + kk];
      let a3 = xs[(ty * 4u + 3u) * KS + kk];
      let b0 = ws[(tx * 4u) * KS + kk];
      let b1 = ws[(tx * 4u + 1u) * KS + kk];
      let b2 = ws[(tx * 4u + 2u) * KS + kk];
      let b3 = ws[(tx * 4u + 3u) * KS + kk];
      s0 += stage4(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
      s1 += stage4(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
      s2 += stage4(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
      s3 += stage4(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
    }
    c0 += vec4<f32>(s0);
    c1 += vec4<f32>(s1);
    c2 += vec4<f32>(s2);
    c3 += vec4<f32>(s3);
    workgroupBarrier();
  }
  let n0 = nBase + tx * 4u;
  let m0 = mBase + ty * 4u;
  store(m0, n0, c0);
  store(m0 + 1u, n0, c1);
  store(m0 + 2u, n0, c2);
  store(m0 + 3u, n0, c3);
}
