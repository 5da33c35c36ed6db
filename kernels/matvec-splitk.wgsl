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

/** Row m's vec4 k of the input. */
fn xload(m: u32, k: u32) -> vec4<f32> { return x[m * p.ldx4 + k]; }

/** Nothing to prepare (matvec-splitk-norm.wgsl computes its rows' norms here). */
fn prologue(n0: u32, lane: u32, sgs: u32, rows: u32) {}

//#matvec-splitk-main
