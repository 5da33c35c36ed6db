// matvec-splitk-norm: RMSNorm fused into matvec-splitk.wgsl (decode, M <= 4, GPUs with subgroups), for the
// projections that read a norm's output (q|k|v after the attention norm, gate|up after the MLP norm):
// y[m, yOff + n] (+)= sum_k h[m, k] * w[n, k] with h[m, :] = x[m, :] / sqrt(mean(x[m, :normDim]^2) + eps) * g.
//
// Contract: x (the residual stream), w, y and the parameters of matvec-splitk.wgsl, and
//   g        [K4] vec4 f32: the norm's weight, normDim values, zero past them (x's columns past normDim are zero).
//   h        [M, ldx4] vec4 f32: the normed rows, written as well (by the first subgroup of the chunk at yOff 0) for
//            the kernels after the projection that read them (the LoRA shrink).
//   normDim, eps: the norm's width and epsilon.
// Each subgroup computes the sums of squares of its rows itself (lanes along the row, then subgroupAdd): the norm
// needs no dispatch of its own, and the projection does not wait for the normed copy to be written and read back.
enable subgroups;
diagnostic(off, subgroup_uniformity);

//#linear-io
@group(0) @binding(4) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> h: array<vec4<f32>>;

/** 1 / rms of each of the (up to 4) rows. */
var<private> inv: vec4<f32>;

/** Row m's vec4 k of the normed input. */
fn xload(m: u32, k: u32) -> vec4<f32> { return g[k] * (x[m * p.ldx4 + k] * inv[m]); }

fn prologue(n0: u32, lane: u32, sgs: u32, rows: u32) {
  var ss = vec4<f32>(0.0);
  for (var k = lane; k < p.K4; k += sgs) {
    for (var m = 0u; m < rows; m++) {
      let v = x[m * p.ldx4 + k];
      ss[m] += dot(v, v);
    }
  }
  inv = 1.0 / sqrt(subgroupAdd(ss) / f32(p.normDim) + p.eps);
  if (p.yOff == 0u && n0 == 0u) {
    for (var k = lane; k < p.K4; k += sgs) {
      for (var m = 0u; m < rows; m++) { h[m * p.ldx4 + k] = xload(m, k); }
    }
  }
}

//#matvec-splitk-main
