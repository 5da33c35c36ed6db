import { adapterIdOf } from "./id.ts";
import { AdapterError } from "../errors.ts";
import { ARCHITECTURE_FAMILIES, LINEAR_TARGETS, type ArchitectureFamily, type LinearTarget } from "../model/config.ts";
import type { LoraAdapter, LoraPair } from "./lora.ts";

/**
 * The canonical encoding of an adapter: what its id hashes, what the disk tier stores and what peers send.
 *   8 bytes  magic "OLORA\0\1\0"
 *   4 bytes  header length H, little-endian
 *   H bytes  JSON { format, family, baseModel, alpha, useRslora, nLayers, pairs: [[layer, target, rank, inDim, outDim], ...] }
 *   then per pair, in the header's order (layer ascending, targets in LINEAR_TARGETS order): A then B,
 *   float32 little-endian, B with the scale folded in and q/k rows in the canonical basis.
 * Everything is derived from the tensors' values, so re-saving the same tensors gives the same id. `family` is the
 * architecture the adapter is for (model/config.ts ArchitectureFamily): a node refuses one of another family even
 * when the shapes fit. Format 2 added it; format 1 bytes (no family) are refused.
 */
const MAGIC = Uint8Array.from([0x4f, 0x4c, 0x4f, 0x52, 0x41, 0x00, 0x01, 0x00]);
export const CANONICAL_FORMAT = "openlora-lora/2";
const MAX_HEADER_BYTES = 1 << 20;
/** Most layers an adapter may name: more than any model has, few enough that a hostile index allocates little. */
export const MAX_LAYERS = 4096;

type PairEntry = [layer: number, target: LinearTarget, rank: number, inDim: number, outDim: number];

/** Encodes an adapter's tensors and config (its id is ignored: the id is derived from these bytes). */
export function encodeAdapter(adapter: Omit<LoraAdapter, "id">): Uint8Array {
  const pairs: PairEntry[] = [];
  const arrays: Float32Array[] = [];
  adapter.layers.forEach((layer, l) => {
    for (const target of LINEAR_TARGETS) {
      const pair = layer[target];
      if (!pair) continue;
      pairs.push([l, target, pair.rank, pair.a.length / pair.rank, pair.b.length / pair.rank]);
      arrays.push(pair.a, pair.b);
    }
  });
  const header = new TextEncoder().encode(
    JSON.stringify({
      format: CANONICAL_FORMAT,
      family: adapter.family ?? "llama",
      baseModel: adapter.baseModel,
      alpha: adapter.alpha,
      useRslora: adapter.useRslora,
      nLayers: adapter.layers.length,
      pairs,
    }),
  );
  const bodyBytes = arrays.reduce((n, a) => n + a.byteLength, 0);
  const out = new Uint8Array(MAGIC.length + 4 + header.length + bodyBytes);
  out.set(MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint32(MAGIC.length, header.length, true);
  out.set(header, MAGIC.length + 4);
  let at = MAGIC.length + 4 + header.length;
  for (const array of arrays) {
    out.set(littleEndianBytes(array), at);
    at += array.byteLength;
  }
  return out;
}

/** Builds the LoraAdapter (with its id) from tensors already in canonical form. */
export function withId(adapter: Omit<LoraAdapter, "id">): { adapter: LoraAdapter; encoded: Uint8Array } {
  const encoded = encodeAdapter(adapter);
  return { adapter: { ...adapter, family: adapter.family ?? "llama", id: adapterIdOf(encoded) }, encoded };
}

/**
 * Decodes canonical bytes, checking every length, so bytes from disk or a peer can be trusted only as far as
 * they parse; `source` names them in errors. The caller compares the returned id with the one it expected.
 */
export function decodeAdapter(bytes: Uint8Array, source: string): LoraAdapter {
  const fail = (problem: string): never => {
    throw new AdapterError(source, problem);
  };
  if (bytes.length < MAGIC.length + 4 || !MAGIC.every((b, i) => bytes[i] === b))
    fail("not an OpenLoRA canonical adapter (bad magic)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(MAGIC.length, true);
  const bodyStart = MAGIC.length + 4 + headerLength;
  if (headerLength > MAX_HEADER_BYTES || bodyStart > bytes.length)
    fail(`header length ${headerLength} exceeds the ${bytes.length} bytes`);
  let header: {
    format?: unknown;
    family?: unknown;
    baseModel?: unknown;
    alpha?: unknown;
    useRslora?: unknown;
    nLayers?: unknown;
    pairs?: unknown;
  };
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(MAGIC.length + 4, bodyStart)));
  } catch (error) {
    return fail(`header is not valid JSON (${(error as Error).message})`);
  }
  if (header.format !== CANONICAL_FORMAT)
    fail(`unknown format ${JSON.stringify(header.format)}, expected ${CANONICAL_FORMAT}`);
  if (!(ARCHITECTURE_FAMILIES as readonly unknown[]).includes(header.family)) {
    fail(`header family ${JSON.stringify(header.family)} is not one of ${ARCHITECTURE_FAMILIES.join(", ")}`);
  }
  if (typeof header.baseModel !== "string" || typeof header.alpha !== "number" || typeof header.useRslora !== "boolean")
    fail("header lacks baseModel, alpha or useRslora");
  const nLayers = header.nLayers;
  if (!Number.isInteger(nLayers) || (nLayers as number) <= 0 || (nLayers as number) > MAX_LAYERS)
    fail(`bad nLayers ${JSON.stringify(nLayers)}`);
  if (!Array.isArray(header.pairs)) return fail("header lacks pairs");
  const layers: Partial<Record<LinearTarget, LoraPair>>[] = Array.from({ length: nLayers as number }, () => ({}));
  let at = bodyStart;
  let rank = 0;
  const targets = new Set<LinearTarget>();
  for (const entry of header.pairs as unknown[]) {
    const [layer, target, r, inDim, outDim] = Array.isArray(entry) ? entry : [];
    if (!Number.isInteger(layer) || layer < 0 || layer >= (nLayers as number))
      fail(`pair ${JSON.stringify(entry)}: bad layer`);
    if (!LINEAR_TARGETS.includes(target)) fail(`pair ${JSON.stringify(entry)}: unknown target`);
    if (![r, inDim, outDim].every((d) => Number.isInteger(d) && d > 0 && d <= 1 << 20))
      fail(`pair ${JSON.stringify(entry)}: bad dimensions`);
    if (layers[layer][target as LinearTarget]) fail(`pair ${JSON.stringify(entry)}: duplicate`);
    const aBytes = 4 * r * inDim;
    const bBytes = 4 * outDim * r;
    if (at + aBytes + bBytes > bytes.length)
      fail(
        `truncated: layer ${layer} ${target} needs ${aBytes + bBytes} bytes at offset ${at}, the data has ${bytes.length}`,
      );
    const a = readFloats(bytes, at, r * inDim);
    const b = readFloats(bytes, at + aBytes, outDim * r);
    at += aBytes + bBytes;
    if (!allFinite(a) || !allFinite(b)) fail(`layer ${layer} ${target}: NaN or infinite values`);
    layers[layer][target as LinearTarget] = { rank: r, a, b };
    rank = Math.max(rank, r);
    targets.add(target);
  }
  if (at !== bytes.length) fail(`${bytes.length - at} trailing bytes after the last tensor`);
  return {
    id: adapterIdOf(bytes),
    family: header.family as ArchitectureFamily,
    baseModel: header.baseModel as string,
    rank,
    alpha: header.alpha as number,
    useRslora: header.useRslora as boolean,
    targets: LINEAR_TARGETS.filter((t) => targets.has(t)),
    layers,
  };
}

// The encoding is little-endian, as is every host this runs on (x86-64, arm64): whole arrays are copied as
// bytes instead of element by element, which made decoding a 768-dim rank-16 adapter about 4x faster.
const LITTLE_ENDIAN_HOST = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;
if (!LITTLE_ENDIAN_HOST) throw new Error("OpenLoRA needs a little-endian host");

function littleEndianBytes(array: Float32Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** A copy (so the result owns aligned memory) of count float32 values at byte offset at. */
function readFloats(bytes: Uint8Array, at: number, count: number): Float32Array {
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(bytes.subarray(at, at + 4 * count));
  return out;
}

function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}
