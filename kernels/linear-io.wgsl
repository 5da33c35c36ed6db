// The linear kernels' shared part (matvec, matvec-splitk, matmul, matmul-tiled put it at their `//#linear-io`
// line): their parameters, the bindings x, w (the weight format's decoder, at `//#weights 2`) and y, and the store
// of 4 outputs of row m from output n0 on, which writes only rows < M and outputs < N and adds when accumulate = 1.
// normDim and eps are read by matvec-splitk-norm.wgsl only.
struct Params {
  M: u32, N: u32, K4: u32, ldx4: u32, ldy: u32, yOff: u32, accumulate: u32, sOff: u32, normDim: u32, eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
//#weights 2
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn store(m: u32, n0: u32, c: vec4<f32>) {
  if (m >= p.M || n0 >= p.N) { return; }
  let o = m * p.ldy + p.yOff + n0;
  let acc = p.accumulate != 0u;
  for (var j = 0u; j < 4u; j++) {
    if (n0 + j < p.N) {
      if (acc) { y[o + j] += c[j]; } else { y[o + j] = c[j]; }
    }
  }
}
