// sample: picks each sequence's next token on the device (greedy argmax, or temperature / top-k / top-p with a
// uniform draw), so that a decode step reads back only token ids. It follows sampling/sample.ts exactly:
//   1. temperature 0: the argmax, the lowest id among equal maxima.
//   2. otherwise p = softmax(logits / temperature); the kept set is every token with p >= cut, where cut is the
//      k-th largest p when 0 < topK < vocab, raised to the largest p whose tail mass sum(p' >= p) reaches topP
//      when topP < 1 (that is the p at which the descending walk first reaches topP; ties at the cut are kept).
//   3. walking kept tokens in increasing id, the first whose running sum of p exceeds u x (sum of kept p);
//      if rounding leaves the draw past the end, the last kept token.
// The k-th largest p and the top-p cut are found by bisection on the bit patterns of p (positive floats order
// as their bits), each step a workgroup reduction; step 3 is a prefix sum over per-thread chunks of ids.
//
// Contract
//   logits [S, ld] f32: row s is sequence s's logits (vocab columns). Rows that are sampled (temperature > 0)
//          are overwritten with their probabilities p (scratch space); greedy rows are left alone.
//   params [S] vec4 f32: (temperature, bitcast<f32>(topK as u32), topP, u) per sequence.
//   ids    [S] i32 output token ids.
// Dispatch: (S) workgroups of WG threads (a power of two, substituted by the host); one sequence per workgroup.
const WG: u32 = 256u;

struct Params { S: u32, vocab: u32, ld: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> ids: array<i32>;

var<workgroup> redV: array<f32, WG>;
var<workgroup> redI: array<u32, WG>;
var<workgroup> lastKept: atomic<u32>;

fn reduceSum(lid: u32, value: f32) -> f32 {
  workgroupBarrier();
  redV[lid] = value;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) { redV[lid] += redV[lid + s]; }
  }
  return workgroupUniformLoad(&redV[0]);
}

fn reduceCount(lid: u32, value: u32) -> u32 {
  workgroupBarrier();
  redI[lid] = value;
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) { redI[lid] += redI[lid + s]; }
  }
  return workgroupUniformLoad(&redI[0]);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let s = wid.x;
  let base = s * p.ld;
  let n = p.vocab;
  let sp = params[s];
  let temperature = sp.x;
  let topK = bitcast<u32>(sp.y);
  let topP = sp.z;
  let u = sp.w;

  // Argmax with the lowest id among equal maxima (each thread sees its ids in increasing order).
  var best = logits[base + min(lid, n - 1u)];
  var bestId = min(lid, n - 1u);
  for (var i = lid + WG; i < n; i += WG) {
    let value = logits[base + i];
    if (value > best) { best = value; bestId = i; }
  }
  redV[lid] = best;
  redI[lid] = bestId;
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    workgroupBarrier();
    if (lid < stride) {
      let ov = redV[lid + stride];
      let oi = redI[lid + stride];
      if (ov > redV[lid] || (ov == redV[lid] && oi < redI[lid])) { redV[lid] = ov; redI[lid] = oi; }
    }
  }
  let maxId = workgroupUniformLoad(&redI[0]);
  if (temperature == 0.0) {
    if (lid == 0u) { ids[s] = i32(maxId); }
    return;
  }
  let maxLogit = logits[base + maxId];

  // Probabilities, written over the logits.
  var local = 0.0;
  for (var i = lid; i < n; i += WG) { local += exp((logits[base + i] - maxLogit) / temperature); }
  let total = reduceSum(lid, local);
  storageBarrier();
  workgroupBarrier();
  for (var i = lid; i < n; i += WG) { logits[base + i] = exp((logits[base + i] - maxLogit) / temperature) / total; }
  storageBarrier();
  workgroupBarrier();

  // The cut, as bits of a positive float: the k-th largest p, then the top-p cut.
  var cut = 0u;
  if (topK > 0u && topK < n) {
    var lo = 0u;
    var hi = 0x3f800001u; // bits(1.0) + 1: no p reaches it
    for (var iter = 0u; iter < 32u; iter++) {
      let mid = lo + (hi - lo) / 2u;
      var count = 0u;
      for (var i = lid; i < n; i += WG) { count += select(0u, 1u, bitcast<u32>(logits[base + i]) >= mid); }
      let c = reduceCount(lid, count);
      if (hi - lo > 1u) {
        if (c >= topK) { lo = mid; } else { hi = mid; }
      }
    }
    cut = lo;
  }
  if (topP < 1.0) {
    var lo = 0u;
    var hi = 0x3f800001u;
    for (var iter = 0u; iter < 32u; iter++) {
      let mid = lo + (hi - lo) / 2u;
      var mass = 0.0;
      for (var i = lid; i < n; i += WG) {
        let q = logits[base + i];
        mass += select(0.0, q, bitcast<u32>(q) >= mid);
      }
      let m = reduceSum(lid, mass);
      if (hi - lo > 1u) {
        if (m >= topP) { lo = mid; } else { hi = mid; }
      }
    }
    cut = max(cut, lo);
  }

  // Kept mass, per-thread chunk sums over contiguous ids, and the last kept id.
  let chunk = (n + WG - 1u) / WG;
  let start = min(lid * chunk, n);
  let end = min(start + chunk, n);
  var chunkSum = 0.0;
  var lastHere = 0u;
  var any = false;
  for (var i = start; i < end; i++) {
    let q = logits[base + i];
    if (bitcast<u32>(q) >= cut) { chunkSum += q; lastHere = i; any = true; }
  }
  if (lid == 0u) { atomicStore(&lastKept, 0u); }
  workgroupBarrier();
  if (any) { atomicMax(&lastKept, lastHere); }
  let kept = reduceSum(lid, chunkSum);
  workgroupBarrier();
  redV[lid] = chunkSum;
  workgroupBarrier();
  if (lid == 0u) {
    let goal = u * kept;
    var running = 0.0;
    var chosen = atomicLoad(&lastKept);
    var found = false;
    for (var t = 0u; t < WG && !found; t++) {
      if (running + redV[t] <= goal) {
        running += redV[t];
        continue;
      }
      let cs = min(t * chunk, n);
      let ce = min(cs + chunk, n);
      for (var i = cs; i < ce; i++) {
        let q = logits[base + i];
        if (bitcast<u32>(q) < cut) { continue; }
        running += q;
        if (running > goal) { chosen = i; found = true; break; }
      }
    }
    ids[s] = i32(chosen);
  }
}
