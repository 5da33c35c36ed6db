// IEEE 754 half precision (F16) conversions, for GGUF and safetensors F16 tensors and F16 GPU weights.

/** Half-precision bits to a number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const scratch = new DataView(new ArrayBuffer(4));

/** A number to half-precision bits, rounding to nearest even; overflow gives infinity. */
export function floatToHalf(value: number): number {
  scratch.setFloat32(0, value);
  const x = scratch.getUint32(0);
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    if (rest > midpoint || (rest === midpoint && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}

let halfTableCache: Float32Array | undefined;

/** All 65536 half values as float32, built once: decoding a GB of F16 weights is then one lookup per value. */
export function halfTable(): Float32Array {
  if (!halfTableCache) {
    halfTableCache = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTableCache[h] = halfToFloat(h);
  }
  return halfTableCache;
}

/** Half bits to float32 in bulk. */
export function halvesToFloats(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const table = halfTable();
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]];
  return dst;
}

/**
 * float32 to half bits in bulk, bit-for-bit what floatToHalf gives, but on the raw float bits (no DataView per
 * value): writing a 1B-parameter model as F16 converts a billion values.
 */
export function floatsToHalves(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i];
    const abs = x & 0x7fffffff;
    // Fast path, the normal half range (2^-14 <= |x| < 65520 before rounding): round to nearest even on the
    // raw bits without a branch (adding 0xfff plus the lowest kept bit carries into the exponent when needed).
    if (abs >= 0x38800000 && abs < 0x477ff000) {
      dst[i] = ((x >>> 16) & 0x8000) | (((abs + 0xfff + ((abs >>> 13) & 1)) >>> 13) - 0x1c000);
    } else {
      dst[i] = floatToHalf(src[i]);
    }
  }
  return dst;
}
