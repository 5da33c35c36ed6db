// matvec: the linear layer for few rows (decode, M <= 4), bandwidth-bound. y[m, yOff + n] (+)= sum_k x[m, k] * w[n, k]
//
// Contract (the same tensors as matmul.wgsl)
//   x  [M, ldx4] vec4 f32 rows, M <= 4 (K4 = ceil(K/4) vec4s used; columns past K must be zero).
//   w  [N, K4] vec4 rows of the weight, [out, in], zero-padded to 4*K4 columns, in any weight format
//      (kernels/weights/<format>.wgsl: wload(row, k) decodes columns 4k .. 4k + 3).
//      A weight above the binding limit is split into row chunks, one dispatch each, yOff = first row.
//   y  [M, ldy] f32, columns yOff .. yOff + N - 1 written; accumulate = 1 adds (fused residual add).
// Each invocation computes 4 outputs for all M rows, so every weight element is read once per step whatever M
// is, and no work is spent on absent rows. All invocations walk K in step, so the x loads are the same address
// across a subgroup (a broadcast on CPU-emulated devices, where lane-varying loads are gathers). The portable
// variant; matvec-splitk.wgsl (lanes along K, subgroupAdd) is the one for GPUs with subgroups.
// Dispatch: (ceil(ceil(N/4) / 64)).

//#linear-io

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n0 = gid.x * 4u;
  if (n0 >= p.N) { return; }
  let wa = n0;
  let wb = min(n0 + 1u, p.N - 1u);
  let wc = min(n0 + 2u, p.N - 1u);
  let wd = min(n0 + 3u, p.N - 1u);
  let rows = min(p.M, 4u);
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  if (rows == 1u) {
    for (var k = 0u; k < p.K4; k++) {
      let a0 = x[k];
      c0 += vec4<f32>(dot(a0, wload(wa, k)), dot(a0, wload(wb, k)), dot(a0, wload(wc, k)), dot(a0, wload(wd, k)));
    }
  } else {
    let x1 = min(1u, rows - 1u) * p.ldx4;
    let x2 = min(2u, rows - 1u) * p.ldx4;
    let x3 = min(3u, rows - 1u) * p.ldx4;
    for (var k = 0u; k < p.K4; k++) {
      let b0 = wload(wa, k);
      let b1 = wload(wb, k);
      let b2 = wload(wc, k);
      let b3 = wload(wd, k);
      let a0 = x[k];
      let a1 = x[x1 + k];
      let a2 = x[x2 + k];
      let a3 = x[x3 + k];
      c0 += vec4<f32>(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
      c1 += vec4<f32>(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
      c2 += vec4<f32>(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
      c3 += vec4<f32>(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
    }
  }
  store(0u, n0, c0);
  if (rows > 1u) { store(1u, n0, c1); }
  if (rows > 2u) { store(2u, n0, c2); }
  if (rows > 3u) { store(3u, n0, c3); }
}
