// matvec-splitk: the linear layer for few rows (decode, M <= 4), bandwidth-bound; the variant for GPUs.
// y[m, yOff + n] (+)= sum_k x[m, k] * w[n, k]
//
// Contract (the same as matvec.wgsl)
//   x  [M, ldx4] vec4 f32 rows, M <= 4 (K4 = ceil(K/4) vec4s used; columns past K must be zero).
//   w  [N, K4] vec4 rows of the weight, [out, in], zero-padded to 4*K4 columns, in any weight format
//      (kernels/weights/<format>.wgsl: wload(row, k) decodes columns 4k .. 4k + 3).
//      A weight above the binding limit is split into row chunks, one dispatch each, yOff = first row.
//   y  [M, ldy] f32, columns yOff .. yOff + N - 1 written; accumulate = 1 adds (fused residual add).
// Each subgroup computes 4 outputs for all M rows: its lanes stride along K (consecutive lanes read
// consecutive vec4s of the same weight rows), so every weight element is read exactly once per step
// whatever M is, and the partial sums meet in subgroupAdd (no workgroup barrier).
// Coalesced on GPUs; on a CPU-emulated device (lavapipe) matvec.wgsl is faster, since every lane-varying load
// is a gather there. Needs the "subgroups" feature. Dispatch: (ceil(ceil(N/4) / (64 / maxSubgroupSize))).
enable subgroups;
diagnostic(off, subgroup_uniformity);

//#linear-io

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let n0 = (wid.x * (64u / sgs) + lid / sgs) * 4u;
  if (n0 >= p.N) { return; } // uniform across the subgroup
  let wa = n0;
  let wb = min(n0 + 1u, p.N - 1u);
  let wc = min(n0 + 2u, p.N - 1u);
  let wd = min(n0 + 3u, p.N - 1u);
  let rows = min(p.M, 4u);
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  for (var k = lane; k < p.K4; k += sgs) {
    let b0 = wload(wa, k);
    let b1 = wload(wb, k);
    let b2 = wload(wc, k);
    let b3 = wload(wd, k);
    let a0 = x[k];
    c0 += vec4<f32>(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
    if (rows > 1u) {
      let a1 = x[p.ldx4 + k];
      c1 += vec4<f32>(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
    }
    if (rows > 2u) {
      let a2 = x[2u * p.ldx4 + k];
      c2 += vec4<f32>(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
    }
    if (rows > 3u) {
      let a3 = x[3u * p.ldx4 + k];
      c3 += vec4<f32>(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
    }
  }
  c0 = subgroupAdd(c0);
  c1 = subgroupAdd(c1);
  c2 = subgroupAdd(c2);
  c3 = subgroupAdd(c3);
  if (lane == 0u) {
    store(0u, n0, c0);
    if (rows > 1u) { store(1u, n0, c1); }
    if (rows > 2u) { store(2u, n0, c2); }
    if (rows > 3u) { store(3u, n0, c3); }
  }
}
