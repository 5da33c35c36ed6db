// attention: causal grouped-query attention of a step's rows over a PAGED KV cache (prefill and decode alike).
//
// Contract
//   q        [T, ldq] f32 rows: query head h at columns h * HEAD_DIM .. (h+1) * HEAD_DIM - 1 (after RoPE).
//   kPool, vPool [numBlocks * blockSize, kvDim] f32: one layer's pools, already holding this step's rows.
//   positions [T] u32: absolute position of each row; row r attends to positions 0 .. positions[r] of its
//            own sequence (the causal mask, for a prefill chunk and for a decode row alike).
//   tables   [T] u32: offset of the row's sequence's block table in blocks; position t of that sequence lives
//            in pool row blocks[tables[r] + t / blockSize] * blockSize + t % blockSize.
//   blocks   u32: the block tables of the step's sequences, concatenated.
//   out      [T, ldo] f32: head h at columns h * HEAD_DIM ...
// Query head h reads kv head h / (nHeads / nKvHeads). A score is q·k x scale (1/sqrt(HEAD_DIM), or Gemma 2's
// query_pre_attn_scalar^-0.5), then softcap x tanh(score / softcap) when softcap > 0 (Gemma 2). With window > 0
// row r attends to positions positions[r] - window + 1 .. positions[r] only (sliding-window layers). The softmax
// is computed online (running max and sum) in one pass over the positions (attention-core.wgsl). For long
// contexts and few rows, attention-split.wgsl + attention-reduce.wgsl spread the positions over more invocations.
// Dispatch: (ceil(T * nHeads / 64)); invocation r * nHeads + h handles row r, head h.
//#attention-core
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let id = gid.x;
  if (id >= p.T * p.nHeads) { return; }
  let r = id / p.nHeads;
  let h = id % p.nHeads;
  let last = positions[r];
  let st = attend(r, h, firstPosition(last), last);
  let oo = r * p.ldo + h * HEAD_DIM;
  let inv = 1.0 / st.l;
  for (var d = 0u; d < HEAD_DIM; d++) { out[oo + d] = st.acc[d] * inv; }
}
