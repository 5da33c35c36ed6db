// AssemblyScript kernels of the simd backend (node/engine/backend/simd/): WebAssembly SIMD128 with relaxed FMA,
// over one shared linear memory that every worker thread instantiates. All arguments are byte addresses and
// element counts; nothing here allocates, so instances on different threads never touch each other's state.
// Built by scripts/build-simd-kernels.sh into node/engine/backend/simd/kernels.wasm (committed; a test checks
// that the artifact is what this source compiles to).
//
// Matrices are row-major [out, in] as everywhere in the engine. dtype codes: 0 f32, 1 f16, 2 bf16, 3 q8_0,
// 4 q4_0 (ggml's block layouts: q8_0 = f16 d + 32 int8; q4_0 = f16 d + 16 bytes, element j in the low nibble
// of byte j and element j + 16 in its high nibble, value d * (q - 8)).

const F32: i32 = 0;
const F16: i32 = 1;
const BF16: i32 = 2;
const Q8_0: i32 = 3;

// ---- helpers ----

@inline function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

@inline function fma(a: v128, b: v128, c: v128): v128 {
  return f32x4.relaxed_madd(a, b, c);
}

/** Half bits (zero-extended in i32 lanes, shifted to the top 16 bits) to f32: exact for normals and subnormals. */
@inline function halfHighToF32(h: v128): v128 {
  // h = half << 16: sign at bit 31, exponent and mantissa below. Arithmetic shift by 3 puts them where f32's
  // go (copying the sign into bits 30..28, cleared next); times 2^112 rebiases the exponent (15 -> 127).
  const shifted = v128.and(i32x4.shr_s(h, 3), i32x4.splat(0x8fffffff));
  return f32x4.mul(shifted, f32x4.splat(5.192296858534828e33));
}

@inline function halfToF32(h: u32): f32 {
  const bits = ((h & 0x8000) << 16) | ((h & 0x7fff) << 13);
  return reinterpret<f32>(bits) * 5.192296858534828e33;
}

// ---- dequantization of rows into a float32 panel ----

/** Decodes `n` elements of one row at `src` (dtype layout) to f32 at `dst`. */
export function dequantizeRow(dtype: i32, dst: usize, src: usize, n: i32): void {
  if (dtype == F32) {
    memory.copy(dst, src, <usize>n << 2);
  } else if (dtype == F16 || dtype == BF16) {
    let i = 0;
    for (; i + 8 <= n; i += 8) {
      const h = v128.load(src + (<usize>i << 1));
      // Interleave zeros below each 16-bit value: the half/bfloat bits land in the top of each 32-bit lane.
      const lo = i8x16.shuffle(i8x16.splat(0), h, 0, 1, 16, 17, 0, 1, 18, 19, 0, 1, 20, 21, 0, 1, 22, 23);
      const hi = i8x16.shuffle(i8x16.splat(0), h, 0, 1, 24, 25, 0, 1, 26, 27, 0, 1, 28, 29, 0, 1, 30, 31);
      if (dtype == F16) {
        v128.store(dst + (<usize>i << 2), halfHighToF32(lo));
        v128.store(dst + (<usize>i << 2), halfHighToF32(hi), 16);
      } else {
        v128.store(dst + (<usize>i << 2), lo);
        v128.store(dst + (<usize>i << 2), hi, 16);
      }
    }
    for (; i < n; i++) {
      const h = <u32>load<u16>(src + (<usize>i << 1));
      store<f32>(dst + (<usize>i << 2), dtype == F16 ? halfToF32(h) : reinterpret<f32>(h << 16));
    }
  } else if (dtype == Q8_0) {
    for (let b = 0; b < n; b += 32) {
      const block = src + <usize>(b >> 5) * 34;
      const d = f32x4.splat(halfToF32(<u32>load<u16>(block)));
      const out = dst + (<usize>b << 2);
      storeBytesScaled(out, v128.load(block + 2), d);
      storeBytesScaled(out + 64, v128.load(block + 18), d);
    }
  } else {
    for (let b = 0; b < n; b += 32) {
      const block = src + <usize>(b >> 5) * 18;
      const d = f32x4.splat(halfToF32(<u32>load<u16>(block)));
      const q = v128.load(block + 2);
      const eight = i8x16.splat(8);
      const out = dst + (<usize>b << 2);
      storeBytesScaled(out, i8x16.sub(v128.and(q, i8x16.splat(15)), eight), d);
      storeBytesScaled(out + 64, i8x16.sub(i8x16.shr_u(q, 4), eight), d);
    }
  }
}

/** 16 signed bytes times d, as 16 floats at `out`. */
@inline function storeBytesScaled(out: usize, q: v128, d: v128): void {
  const lo = i16x8.extend_low_i8x16_s(q);
  const hi = i16x8.extend_high_i8x16_s(q);
  v128.store(out, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), d));
  v128.store(out, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), d), 16);
  v128.store(out, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), d), 32);
  v128.store(out, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), d), 48);
}

// ---- the dense product: out[r, j] (+)= sum_i x[r, i] * w[j, i] ----

/** Dot product of `bytes` (a multiple of 16) at a and b: four accumulators, so the FMAs do not wait on each other. */
@inline function dot(a: usize, b: usize, bytes: usize): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let i: usize = 0;
  for (; i + 64 <= bytes; i += 64) {
    a0 = fma(v128.load(a + i), v128.load(b + i), a0);
    a1 = fma(v128.load(a + i, 16), v128.load(b + i, 16), a1);
    a2 = fma(v128.load(a + i, 32), v128.load(b + i, 32), a2);
    a3 = fma(v128.load(a + i, 48), v128.load(b + i, 48), a3);
  }
  for (; i < bytes; i += 16) a0 = fma(v128.load(a + i), v128.load(b + i), a0);
  return hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
}


@inline function put(at: usize, value: f32, accumulate: bool): void {
  store<f32>(at, accumulate ? load<f32>(at) + value : value);
}

/** Four weight rows (f32, n columns) against every x row: 4 x 2 register tiles of f32x4 accumulators. */
function tile4(
  out: usize, ldo: usize, x: usize, ldx: usize, rows: i32, w0: usize, ldw: usize, n: i32, accumulate: bool,
): void {
  const w1 = w0 + ldw;
  const w2 = w1 + ldw;
  const w3 = w2 + ldw;
  const vecBytes = <usize>(n & ~3) << 2;
  const bytes = <usize>n << 2;
  let r = 0;
  for (; r + 2 <= rows; r += 2) {
    const x0 = x + <usize>r * ldx;
    const x1 = x0 + ldx;
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
    let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
    for (let i: usize = 0; i < vecBytes; i += 16) {
      const v0 = v128.load(x0 + i);
      const v1 = v128.load(x1 + i);
      let q = v128.load(w0 + i);
      a00 = fma(q, v0, a00);
      a01 = fma(q, v1, a01);
      q = v128.load(w1 + i);
      a10 = fma(q, v0, a10);
      a11 = fma(q, v1, a11);
      q = v128.load(w2 + i);
      a20 = fma(q, v0, a20);
      a21 = fma(q, v1, a21);
      q = v128.load(w3 + i);
      a30 = fma(q, v0, a30);
      a31 = fma(q, v1, a31);
    }
    let s00 = hsum(a00), s01 = hsum(a01), s10 = hsum(a10), s11 = hsum(a11);
    let s20 = hsum(a20), s21 = hsum(a21), s30 = hsum(a30), s31 = hsum(a31);
    for (let i = vecBytes; i < bytes; i += 4) {
      const v0 = load<f32>(x0 + i);
      const v1 = load<f32>(x1 + i);
      s00 += load<f32>(w0 + i) * v0;
      s01 += load<f32>(w0 + i) * v1;
      s10 += load<f32>(w1 + i) * v0;
      s11 += load<f32>(w1 + i) * v1;
      s20 += load<f32>(w2 + i) * v0;
      s21 += load<f32>(w2 + i) * v1;
      s30 += load<f32>(w3 + i) * v0;
      s31 += load<f32>(w3 + i) * v1;
    }
    const o0 = out + <usize>r * ldo;
    const o1 = o0 + ldo;
    put(o0, s00, accumulate);
    put(o0 + 4, s10, accumulate);
    put(o0 + 8, s20, accumulate);
    put(o0 + 12, s30, accumulate);
    put(o1, s01, accumulate);
    put(o1 + 4, s11, accumulate);
    put(o1 + 8, s21, accumulate);
    put(o1 + 12, s31, accumulate);
  }
  if (r < rows) {
    const x0 = x + <usize>r * ldx;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let i: usize = 0; i < vecBytes; i += 16) {
      const v0 = v128.load(x0 + i);
      a0 = fma(v128.load(w0 + i), v0, a0);
      a1 = fma(v128.load(w1 + i), v0, a1);
      a2 = fma(v128.load(w2 + i), v0, a2);
      a3 = fma(v128.load(w3 + i), v0, a3);
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (let i = vecBytes; i < bytes; i += 4) {
      const v0 = load<f32>(x0 + i);
      s0 += load<f32>(w0 + i) * v0;
      s1 += load<f32>(w1 + i) * v0;
      s2 += load<f32>(w2 + i) * v0;
      s3 += load<f32>(w3 + i) * v0;
    }
    const o0 = out + <usize>r * ldo;
    put(o0, s0, accumulate);
    put(o0 + 4, s1, accumulate);
    put(o0 + 8, s2, accumulate);
    put(o0 + 12, s3, accumulate);
  }
}

/** One weight row (f32) against every x row. */
function tile1(out: usize, ldo: usize, x: usize, ldx: usize, rows: i32, w0: usize, n: i32, accumulate: bool): void {
  const vecBytes = <usize>(n & ~3) << 2;
  const bytes = <usize>n << 2;
  for (let r = 0; r < rows; r++) {
    const x0 = x + <usize>r * ldx;
    let a0 = f32x4.splat(0);
    for (let i: usize = 0; i < vecBytes; i += 16) a0 = fma(v128.load(w0 + i), v128.load(x0 + i), a0);
    let s0 = hsum(a0);
    for (let i = vecBytes; i < bytes; i += 4) s0 += load<f32>(w0 + i) * load<f32>(x0 + i);
    put(out + <usize>r * ldo, s0, accumulate);
  }
}

/**
 * One x row against weight rows [j0, j1), one row at a time: a single sequential stream through the weights with
 * four accumulators reads them at about twice the rate of the 4-row tile (25 against 12 GB/s on one core of
 * this machine), and batch-1 decode is nothing but this. The sums run in another order than the tile's (within
 * rounding of it): a 1-row pass is not bit-identical to the same row inside a larger one.
 */
function gemv(
  dtype: i32, out: usize, x: usize, w: usize, wRow: usize, n: i32, j0: i32, j1: i32, accumulate: bool, panel: usize,
): void {
  const vecBytes = <usize>(n & ~3) << 2;
  const bytes = <usize>n << 2;
  for (let j = j0; j < j1; j++) {
    let row = w + <usize>j * wRow;
    if (dtype != F32) {
      dequantizeRow(dtype, panel, row, n);
      row = panel;
    }
    let s = dot(x, row, vecBytes);
    for (let i = vecBytes; i < bytes; i += 4) s += load<f32>(row + i) * load<f32>(x + i);
    put(out + (<usize>j << 2), s, accumulate);
  }
}

/** Bytes of one row of n elements in dtype's layout. */
@inline function rowBytes(dtype: i32, n: i32): usize {
  if (dtype == F32) return <usize>n << 2;
  if (dtype == F16 || dtype == BF16) return <usize>n << 1;
  if (dtype == Q8_0) return <usize>(n >> 5) * 34;
  return <usize>(n >> 5) * 18;
}

/**
 * out[r * ldo + j] (+)= sum_i x[r * ldx + i] * W[j, i] for r < rows and j0 <= j < j1 (ldo, ldx in elements;
 * `out` points at column 0). W is [*, n] in dtype's layout; rows other than f32 are decoded four at a time
 * into `panel` (4 * n floats of this thread's scratch) and the f32 tile reads them from there, so each weight
 * byte is read from memory once per call whatever the number of x rows.
 */
export function linear(
  dtype: i32, out: usize, ldo: i32, x: usize, ldx: i32, rows: i32, w: usize, n: i32, j0: i32, j1: i32,
  accumulate: bool, panel: usize,
): void {
  const wRow = rowBytes(dtype, n);
  if (rows == 1) {
    gemv(dtype, out, x, w, wRow, n, j0, j1, accumulate, panel);
    return;
  }
  const ldoB = <usize>ldo << 2;
  const ldxB = <usize>ldx << 2;
  const f32Row = <usize>n << 2;
  let j = j0;
  for (; j + 4 <= j1; j += 4) {
    let w0 = w + <usize>j * wRow;
    let ldw = wRow;
    if (dtype != F32) {
      for (let k = 0; k < 4; k++) dequantizeRow(dtype, panel + <usize>k * f32Row, w0 + <usize>k * wRow, n);
      w0 = panel;
      ldw = f32Row;
    }
    tile4(out + (<usize>j << 2), ldoB, x, ldxB, rows, w0, ldw, n, accumulate);
  }
  for (; j < j1; j++) {
    let w0 = w + <usize>j * wRow;
    if (dtype != F32) {
      dequantizeRow(dtype, panel, w0, n);
      w0 = panel;
    }
    tile1(out + (<usize>j << 2), ldoB, x, ldxB, rows, w0, n, accumulate);
  }
}

// ---- the rest of a layer ----

/** out[r] = x[r] / rms(x[r]) * weight for rows r (row stride `ld` elements in both). */
export function rmsnorm(out: usize, x: usize, ld: i32, weight: usize, rows: i32, dim: i32, eps: f32): void {
  const vecBytes = <usize>(dim & ~3) << 2;
  const bytes = <usize>dim << 2;
  for (let r = 0; r < rows; r++) {
    const xr = x + ((<usize>r * ld) << 2);
    const or = out + ((<usize>r * ld) << 2);
    let acc = f32x4.splat(0);
    for (let i: usize = 0; i < vecBytes; i += 16) {
      const v = v128.load(xr + i);
      acc = fma(v, v, acc);
    }
    let ss = <f64>hsum(acc);
    for (let i = vecBytes; i < bytes; i += 4) ss += <f64>(load<f32>(xr + i) * load<f32>(xr + i));
    const inv = <f32>(1 / Math.sqrt(ss / dim + eps));
    const s = f32x4.splat(inv);
    for (let i: usize = 0; i < vecBytes; i += 16) {
      v128.store(or + i, f32x4.mul(v128.load(weight + i), f32x4.mul(v128.load(xr + i), s)));
    }
    for (let i = vecBytes; i < bytes; i += 4) store<f32>(or + i, load<f32>(weight + i) * (load<f32>(xr + i) * inv));
  }
}

/**
 * Rotary embedding of columns [c0, c1) (even bounds, inside one projection whose heads are headDim wide and start
 * at column `base`) of `rows` rows; row r is at position positions[r] and the table holds cos, sin pairs per
 * (position, i) for i < headDim / 2.
 */
export function rope(
  x: usize, ld: i32, rows: i32, positions: usize, base: i32, c0: i32, c1: i32, headDim: i32, table: usize,
): void {
  const half = headDim >> 1;
  for (let r = 0; r < rows; r++) {
    const p = load<i32>(positions + (<usize>r << 2));
    const row = x + ((<usize>r * ld) << 2);
    const t = table + ((<usize>p * half) << 3);
    for (let c = c0; c < c1; c += 2) {
      const i = ((c - base) % headDim) >> 1;
      const cos = load<f32>(t + (<usize>i << 3));
      const sin = load<f32>(t + (<usize>i << 3), 4);
      const at = row + (<usize>c << 2);
      const a = load<f32>(at);
      const b = load<f32>(at, 4);
      store<f32>(at, a * cos - b * sin);
      store<f32>(at, a * sin + b * cos, 4);
    }
  }
}

/** e^x in each lane for x <= 0 (Cephes expf: x = n ln2 + r, a degree-6 polynomial in r, times 2^n). */
@inline function exp4(x: v128): v128 {
  const clamped = f32x4.max(x, f32x4.splat(-87.0)); // below, e^x is under f32's normals: ~0 against a sum >= 1
  const n = f32x4.nearest(f32x4.mul(clamped, f32x4.splat(1.44269504088896341)));
  const r = fma(n, f32x4.splat(2.12194440e-4), fma(n, f32x4.splat(-0.693359375), clamped));
  let y = f32x4.splat(1.9875691500e-4);
  y = fma(y, r, f32x4.splat(1.3981999507e-3));
  y = fma(y, r, f32x4.splat(8.3334519073e-3));
  y = fma(y, r, f32x4.splat(4.1665795894e-2));
  y = fma(y, r, f32x4.splat(1.6666665459e-1));
  y = fma(y, r, f32x4.splat(5.0000001201e-1));
  y = f32x4.add(fma(y, f32x4.mul(r, r), r), f32x4.splat(1));
  const pow2 = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(y, pow2);
}

/**
 * out[0 .. 8 vectors) (or `vectors` < 8) = sum over t of weights[t] * V row t at byte offset `at`, keys walked
 * block by block of the paged cache; the accumulators stay in registers across the keys.
 */
@inline function weightedRows(
  out: usize, at: usize, vBase: usize, table: usize, blockSize: i32, strideB: usize, length: i32, weights: usize,
  vectors: i32,
): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
  let t = 0;
  for (let b = 0; t < length; b++) {
    const end = min(length, t + blockSize);
    let v = vBase + <usize>(load<i32>(table + (<usize>b << 2)) * blockSize) * strideB + at;
    for (; t < end; t++, v += strideB) {
      const wt = v128.load32_splat(weights + (<usize>t << 2));
      a0 = fma(wt, v128.load(v), a0);
      if (vectors > 1) a1 = fma(wt, v128.load(v, 16), a1);
      if (vectors > 2) a2 = fma(wt, v128.load(v, 32), a2);
      if (vectors > 3) a3 = fma(wt, v128.load(v, 48), a3);
      if (vectors > 4) a4 = fma(wt, v128.load(v, 64), a4);
      if (vectors > 5) a5 = fma(wt, v128.load(v, 80), a5);
      if (vectors > 6) a6 = fma(wt, v128.load(v, 96), a6);
      if (vectors > 7) a7 = fma(wt, v128.load(v, 112), a7);
    }
  }
  v128.store(out, a0);
  if (vectors > 1) v128.store(out, a1, 16);
  if (vectors > 2) v128.store(out, a2, 32);
  if (vectors > 3) v128.store(out, a3, 48);
  if (vectors > 4) v128.store(out, a4, 64);
  if (vectors > 5) v128.store(out, a5, 80);
  if (vectors > 6) v128.store(out, a6, 96);
  if (vectors > 7) v128.store(out, a7, 112);
}

/**
 * Causal attention of one query row and head over a paged cache: scores against positions 0 .. length - 1
 * (keys at kBase + row(t) * kvDim + kvOffset, row(t) = table[t / blockSize] * blockSize + t % blockSize),
 * softmax, weighted sum of values into out[0 .. headDim) (headDim a multiple of 4). `scores` is length + 3
 * floats of scratch.
 */
export function attend(
  out: usize, q: usize, kBase: usize, vBase: usize, table: usize, blockSize: i32, kvDim: i32, kvOffset: i32,
  length: i32, headDim: i32, scale: f32, scores: usize,
): void {
  const vecBytes = <usize>headDim << 2;
  const strideB = <usize>kvDim << 2;
  const offB = <usize>kvOffset << 2;
  let max = f32.NEGATIVE_INFINITY;
  let t = 0;
  for (let b = 0; t < length; b++) {
    const end = min(length, t + blockSize);
    let k = kBase + <usize>(load<i32>(table + (<usize>b << 2)) * blockSize) * strideB + offB;
    for (; t < end; t++, k += strideB) {
      const s = dot(q, k, vecBytes) * scale;
      store<f32>(scores + (<usize>t << 2), s);
      max = s > max ? s : max;
    }
  }
  // Softmax numerators four at a time (the padding lanes past length are computed and never read).
  const m = f32x4.splat(max);
  let sum = f32x4.splat(0);
  const lanes = <usize>((length + 3) & ~3) << 2;
  const tailMask = i32x4(0, 1, 2, 3);
  for (let i: usize = 0; i < lanes; i += 16) {
    const e = exp4(f32x4.sub(v128.load(scores + i), m));
    const valid = i32x4.lt_s(i32x4.add(tailMask, i32x4.splat(<i32>(i >> 2))), i32x4.splat(length));
    const kept = v128.and(e, valid);
    v128.store(scores + i, kept);
    sum = f32x4.add(sum, kept);
  }
  const inv = f32x4.splat(1 / hsum(sum));
  for (let i: usize = 0; i < lanes; i += 16) v128.store(scores + i, f32x4.mul(v128.load(scores + i), inv));
  for (let at: usize = 0; at < vecBytes; at += 128) {
    const vectors = <i32>(min(vecBytes - at, 128) >> 4);
    if (vectors == 8) weightedRows(out + at, at + offB, vBase, table, blockSize, strideB, length, scores, 8);
    else weightedRows(out + at, at + offB, vBase, table, blockSize, strideB, length, scores, vectors);
  }
}

/**
 * out[r, c] = silu(gate[r, c]) * up[r, c] for columns [c0, c1) of rows; all three share the row stride ld.
 * silu(g) = g * sigmoid(g), sigmoid from e = e^-|g| (exp4's range): 1 / (1 + e) for g >= 0, e / (1 + e) below.
 */
export function swiglu(out: usize, gate: usize, up: usize, ld: i32, rows: i32, c0: i32, c1: i32): void {
  const one = f32x4.splat(1);
  for (let r = 0; r < rows; r++) {
    const row = <usize>r * ld;
    let c = c0;
    for (; c + 4 <= c1; c += 4) {
      const at = (row + c) << 2;
      const g = v128.load(gate + at);
      const e = exp4(f32x4.neg(f32x4.abs(g)));
      const inv = f32x4.div(one, f32x4.add(one, e));
      const sigmoid = v128.bitselect(inv, f32x4.mul(e, inv), f32x4.ge(g, f32x4.splat(0)));
      v128.store(out + at, f32x4.mul(f32x4.mul(g, sigmoid), v128.load(up + at)));
    }
    for (; c < c1; c++) {
      const at = (row + c) << 2;
      const g = load<f32>(gate + at);
      store<f32>(out + at, <f32>(<f64>g / (1 + Math.exp(-<f64>g))) * load<f32>(up + at));
    }
  }
}

/** Copies n bytes (KV rows into the paged pool). */
export function copy(dst: usize, src: usize, n: usize): void {
  memory.copy(dst, src, n);
}
