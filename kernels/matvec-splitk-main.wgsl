// The body of matvec-splitk.wgsl and matvec-splitk-norm.wgsl (at their `//#matvec-splitk-main` line): the entry
// point, which calls the including kernel's prologue() once and reads the input through its xload(m, k).
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
  prologue(n0, lane, sgs, rows);
  var c0 = vec4<f32>(0.0);
  var c1 = vec4<f32>(0.0);
  var c2 = vec4<f32>(0.0);
  var c3 = vec4<f32>(0.0);
  for (var k = lane; k < p.K4; k += sgs) {
    let b0 = wload(wa, k);
    let b1 = wload(wb, k);
    let b2 = wload(wc, k);
    let b3 = wload(wd, k);
    let a0 = xload(0u, k);
    c0 += vec4<f32>(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
    if (rows > 1u) {
      let a1 = xload(1u, k);
      c1 += vec4<f32>(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
    }
    if (rows > 2u) {
      let a2 = xload(2u, k);
      c2 += vec4<f32>(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
    }
    if (rows > 3u) {
      let a3 = xload(3u, k);
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
