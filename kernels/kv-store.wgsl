// kv-store: appends the new rows' K and V to the paged KV pool of one layer.
//
// Contract
//   src   [T, ld] f32 rows holding k at columns kOff .. kOff + kvDim - 1 and v at vOff .. vOff + kvDim - 1
//         (the fused q|k|v projection output, after RoPE).
//   slots [T] u32: the pool row of each new row, block * blockSize + position % blockSize, where block is
//         blockTable[floor(position / blockSize)] of the row's sequence (the host resolves the table).
//   kPool, vPool [numBlocks * blockSize, kvDim] f32: this layer's pools ([numBlocks, blockSize, kvDim]).
// Dispatch: (ceil(kvDim / 64), T).
struct Params { T: u32, ld: u32, kvDim: u32, kOff: u32, vOff: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> slots: array<u32>;
@group(0) @binding(3) var<storage, read_write> kPool: array<f32>;
@group(0) @binding(4) var<storage, read_write> vPool: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  let r = gid.y;
  if (c >= p.kvDim || r >= p.T) { return; }
  let dst = slots[r] * p.kvDim + c;
  kPool[dst] = src[r * p.ld + p.kOff + c];
  vPool[dst] = src[r * p.ld + p.vOff + c];
}
