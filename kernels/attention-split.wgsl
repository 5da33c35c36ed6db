// attention-split: attention.wgsl split along the context (flash-decoding), for long contexts and few rows.
//
// Contract: the tensors and parameters of attention.wgsl (attention-core.wgsl), and
//   nParts, partLen  partition i of every row covers positions i * partLen .. (i + 1) * partLen - 1, clipped to the
//                    row's range (its window .. positions[r]); nParts * partLen must reach the longest row's context.
//   partials [T, nHeads, nParts, HEAD_DIM + 2] f32: per partition the running max m, the sum l of exp(score - m)
//            and the HEAD_DIM sums of exp(score - m) v, unnormalized; an empty partition writes m = -3e38, l = 0.
// attention-reduce.wgsl then merges the partitions of each (row, head) into the output.
// Dispatch: (ceil(T * nHeads / 64), nParts); invocation (r * nHeads + h, i) handles row r, head h, partition i.
//#attention-core
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x;
  let part = gid.y;
  if (id >= p.T * p.nHeads || part >= p.nParts) { return; }
  let r = id / p.nHeads;
  let h = id % p.nHeads;
  let last = positions[r];
  let t0 = max(firstPosition(last), part * p.partLen);
  let t1 = min(last, part * p.partLen + p.partLen - 1u);
  let st = attend(r, h, t0, t1); // empty when t0 > t1
  let o = (id * p.nParts + part) * (HEAD_DIM + 2u);
  partials[o] = st.m;
  partials[o + 1u] = st.l;
  for (var d = 0u; d < HEAD_DIM; d++) { partials[o + 2u + d] = st.acc[d]; }
}
