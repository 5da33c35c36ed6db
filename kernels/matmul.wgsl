// matmul: the linear layer for many rows (prefill). y[m, yOff + n] (+)= sum_k x[m, k] * w[n, k]
//
// Contract
//   x  [M, ldx4] vec4 f32 rows (K4 = ceil(K/4) vec4s used; columns past K must be zero).
//   w  [N, K4] vec4 rows of the weight in the engine's [out, in] layout, zero-padded from K to 4*K4 columns;
//      in any weight format (kernels/weights/<format>.wgsl: wload(row, k) decodes columns 4k .. 4k + 3).
//      A weight taller than the storage binding limit is split into chunks of
//      rows; the host dispatches once per chunk with yOff = the chunk's first row.
//   y  [M, ldy] f32; this dispatch writes columns yOff .. yOff + N - 1. accumulate = 1 adds to y (the residual
//      add of the output and down projections is fused here), 0 overwrites.
// Each invocation computes a 4x4 block (4 rows x 4 outputs) from vec4 loads: register blocking without
// workgroup memory, the fastest form on lavapipe, where barriers are expensive.
// Dispatch: (ceil(ceil(N/4) / 64), ceil(M/4)).

//#linear-io

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * 4u;
  let m0 = gid.y * 4u;
  if (n0 >= p.N || m0 >= p.M) { return; }
  // Out-of-range rows and outputs load a valid row (the last) and are dropped at the store.
  let wa = n0;
  let wb = min(n0 + 1u, p.N - 1u);
  let wc = min(n0 + 2u, p.N - 1u);
  let wd = min(n0 + 3u, p.N - 1u);
  let xa = m0 * p.ldx4;
  let xb = min(m0 + 1u, p.M - 1u) * p.ldx4;
  let xc = min(m0 + 2u, p.M - 1u) * p.ldx4;
  let xd = min(m0 + 3u, p.M - 1u) * p.ldx4;
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  for (var k = 0u; k < p.K4; k++) {
    let b0 = wload(wa, k);
    let b1 = wload(wb, k);
    let b2 = wload(wc, k);
    let b3 = wload(wd, k);
    let a0 = x[xa + k];
    let a1 = x[xb + k];
    let a2 = x[xc + k];
    let a3 = x[xd + k];
    c0 += vec4<f32>(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
    c1 += vec4<f32>(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
    c2 += vec4<f32>(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
    c3 += vec4<f32>(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
  }
  store(m0, n0, c0);
  store(m0 + 1u, n0, c1);
  store(m0 + 2u, n0, c2);
  store(m0 + 3u, n0, c3);
}
