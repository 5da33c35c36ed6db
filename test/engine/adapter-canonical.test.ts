// The canonical adapter encoding (node/engine/adapter/canonical.ts) read back independently of the decoder: the
// bytes its id hashes, the disk tier stores and peers send. Then every check decodeAdapter makes on bytes it cannot
// trust, each with the error it must give.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { decodeAdapter, encodeAdapter, withId } from "../../node/engine/adapter/canonical.ts";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import { AdapterError } from "../../node/engine/errors.ts";

const MAGIC = [0x4f, 0x4c, 0x4f, 0x52, 0x41, 0x00, 0x01, 0x00]; // "OLORA\0\1\0"

const floats = (n: number, start: number) => Float32Array.from({ length: n }, (_, i) => start + i / 4);

/** Two layers; layer 1 has q (rank 2, [8] -> [8]) and down (rank 1, [6] -> [4]); layer 0 has nothing. */
const small: Omit<LoraAdapter, "id"> = {
  family: "qwen3",
  baseModel: "tiny",
  rank: 2,
  alpha: 4,
  useRslora: true,
  targets: ["q", "down"],
  layers: [
    {},
    { down: { rank: 1, a: floats(6, 100), b: floats(4, 200) }, q: { rank: 2, a: floats(16, 0), b: floats(16, 50) } },
  ],
};

/** Canonical bytes assembled by hand: magic, header length (LE), a header object as JSON, then raw float32s. */
function assemble(
  header: unknown,
  body: number[] = [],
  options: { headerText?: string; magic?: number[] } = {},
): Uint8Array {
  const text = new TextEncoder().encode(options.headerText ?? JSON.stringify(header));
  const out = new Uint8Array(12 + text.length + 4 * body.length);
  out.set(options.magic ?? MAGIC, 0);
  new DataView(out.buffer).setUint32(8, text.length, true);
  out.set(text, 12);
  const view = new DataView(out.buffer, 12 + text.length);
  body.forEach((x, i) => view.setFloat32(4 * i, x, true));
  return out;
}

const header = (over: Record<string, unknown> = {}) => ({
  format: "openlora-lora/2",
  family: "llama",
  baseModel: "m",
  alpha: 2,
  useRslora: false,
  nLayers: 2,
  pairs: [[0, "v", 1, 2, 3]],
  ...over,
});
const body = [1, 2, 3, 4, 5]; // A [1, 2] then B [3, 1]

function decodeError(bytes: Uint8Array): AdapterError {
  try {
    decodeAdapter(bytes, "peer X");
  } catch (error) {
    expect(error).toBeInstanceOf(AdapterError);
    expect((error as Error).message).toMatch(/^adapter peer X: /);
    return error as AdapterError;
  }
  throw new Error("decodeAdapter accepted the bytes");
}

describe("canonical encoding", () => {
  it("lays out magic, header length, a JSON header of every pair, then A and B of each pair as float32 LE", () => {
    const bytes = encodeAdapter(small);
    expect([...bytes.subarray(0, 8)]).toEqual(MAGIC);
    const headerLength = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
    const parsed = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLength)));
    // Pairs in layer order, targets in q,k,v,o,gate,up,down order (not the object's key order).
    expect(parsed).toEqual({
      format: "openlora-lora/2",
      family: "qwen3",
      baseModel: "tiny",
      alpha: 4,
      useRslora: true,
      nLayers: 2,
      pairs: [
        [1, "q", 2, 8, 8],
        [1, "down", 1, 6, 4],
      ],
    });
    const rest = new Float32Array(bytes.slice(12 + headerLength).buffer);
    expect([...rest]).toEqual([...floats(16, 0), ...floats(16, 50), ...floats(6, 100), ...floats(4, 200)]);
  });

  it("names the adapter by the sha256 of those bytes, and decodes them back to the same adapter", () => {
    const { adapter, encoded } = withId(small);
    expect(adapter.id).toBe(`0x${createHash("sha256").update(encoded).digest("hex")}`);
    const decoded = decodeAdapter(encoded, "disk");
    expect(decoded).toEqual(adapter);
    expect(decoded.rank).toBe(2); // the largest pair rank
    expect(decoded.targets).toEqual(["q", "down"]);
    expect(decodeAdapter(assemble(header(), body), "x")).toMatchObject({
      family: "llama",
      baseModel: "m",
      alpha: 2,
      useRslora: false,
      rank: 1,
      targets: ["v"],
      layers: [{ v: { rank: 1, a: Float32Array.of(1, 2), b: Float32Array.of(3, 4, 5) } }, {}],
    });
  });

  it("decodes bytes that sit at an offset of a larger buffer", () => {
    const encoded = encodeAdapter(small);
    const padded = new Uint8Array(encoded.length + 3);
    padded.set(encoded, 3);
    expect(decodeAdapter(padded.subarray(3), "x")).toEqual(decodeAdapter(encoded, "x"));
  });
});

describe("decodeAdapter refuses bytes it cannot trust, naming the problem", () => {
  it("bad magic or too short for a header length", () => {
    expect(
      decodeError(assemble(header(), body, { magic: [0x4f, 0x4c, 0x4f, 0x52, 0x41, 0x00, 0x02, 0x00] })).message,
    ).toMatch(/bad magic/);
    expect(decodeError(Uint8Array.from(MAGIC)).message).toMatch(/bad magic/);
    expect(decodeError(Uint8Array.from([...MAGIC, 0, 0, 0])).message).toMatch(/bad magic/);
    expect(() => decodeAdapter(Uint8Array.from([...MAGIC, 2, 0, 0, 0, 0x7b, 0x7d]), "x")).toThrow(
      /unknown format undefined/,
    ); // 12 bytes + "{}"
  });

  it("a header length past the data or over 1 MiB", () => {
    const bytes = assemble(header(), body);
    new DataView(bytes.buffer).setUint32(8, bytes.length, true);
    expect(decodeError(bytes).message).toMatch(`header length ${bytes.length} exceeds the ${bytes.length} bytes`);
    // A header of exactly 1 MiB (JSON padded with spaces) is read; one byte more is refused though present.
    for (const [size, ok] of [
      [1 << 20, true],
      [(1 << 20) + 1, false],
    ] as const) {
      const text = JSON.stringify(header());
      const padded = assemble(null, body, { headerText: text + " ".repeat(size - text.length) });
      if (ok) expect(decodeAdapter(padded, "x").targets).toEqual(["v"]);
      else expect(decodeError(padded).message).toMatch(`header length ${size} exceeds`);
    }
  });

  it("a header that is not UTF-8 JSON of the known format", () => {
    expect(decodeError(assemble(null, body, { headerText: "{ not json" })).message).toMatch(/header is not valid JSON/);
    const latin1 = assemble(null, [], { headerText: "{}" });
    latin1[12] = 0xff;
    expect(decodeError(latin1).message).toMatch(/header is not valid JSON/);
    expect(decodeError(assemble(header({ format: "openlora-lora/1" }), body)).message).toMatch(
      'unknown format "openlora-lora/1", expected openlora-lora/2',
    );
  });

  it("a header that names no architecture family, or one the engine does not know", () => {
    for (const family of [undefined, "gpt2", 3]) {
      expect(decodeError(assemble(header({ family }), body)).message).toMatch(
        `header family ${JSON.stringify(family)} is not one of llama, qwen2, qwen3, gemma2`,
      );
    }
  });

  it("a header without baseModel, alpha or useRslora of the right types", () => {
    for (const over of [{ baseModel: 3 }, { alpha: "2" }, { useRslora: 1 }, { baseModel: undefined }]) {
      expect(decodeError(assemble(header(over), body)).message, JSON.stringify(over)).toMatch(
        /header lacks baseModel, alpha or useRslora/,
      );
    }
  });

  it("a bad layer count", () => {
    for (const nLayers of [0, -1, 1.5, 4097, "2", null]) {
      expect(decodeError(assemble(header({ nLayers, pairs: [] }), [])).message, String(nLayers)).toMatch(
        `bad nLayers ${JSON.stringify(nLayers)}`,
      );
    }
    expect(decodeAdapter(assemble(header({ nLayers: 4096, pairs: [] }), []), "x").layers).toHaveLength(4096);
    expect(decodeAdapter(assemble(header({ nLayers: 1, pairs: [] }), []), "x")).toMatchObject({
      rank: 0,
      targets: [],
      layers: [{}],
    });
  });

  it("missing pairs, or a pair with a bad layer, target or dimensions", () => {
    expect(decodeError(assemble(header({ pairs: undefined }), [])).message).toMatch(/header lacks pairs/);
    expect(decodeError(assemble(header({ pairs: {} }), [])).message).toMatch(/header lacks pairs/);
    const bad: [unknown, string][] = [
      [[-1, "v", 1, 2, 3], "bad layer"],
      [[2, "v", 1, 2, 3], "bad layer"],
      [[0.5, "v", 1, 2, 3], "bad layer"],
      [["0", "v", 1, 2, 3], "bad layer"],
      [[0, "lm_head", 1, 2, 3], "unknown target"],
      ["v", "bad layer"],
      [[0, "v", 0, 2, 3], "bad dimensions"],
      [[0, "v", 1, -2, 3], "bad dimensions"],
      [[0, "v", 1, 2, 1.5], "bad dimensions"],
      [[0, "v", (1 << 20) + 1, 1, 1], "bad dimensions"],
      [[0, "v", 1, "2", 3], "bad dimensions"],
    ];
    for (const [pair, problem] of bad) {
      expect(decodeError(assemble(header({ pairs: [pair] }), body)).message, JSON.stringify(pair)).toMatch(
        `pair ${JSON.stringify(pair)}: ${problem}`,
      );
    }
    // The largest dimension accepted: 2^20.
    const wide = decodeAdapter(
      assemble(
        header({ pairs: [[1, "o", 1, 1 << 20, 1]] }),
        Array.from({ length: (1 << 20) + 1 }, () => 0.5),
      ),
      "x",
    );
    expect(wide.layers[1].o!.a).toHaveLength(1 << 20);
  });

  it("a pair listed twice", () => {
    const twice = assemble(
      header({
        pairs: [
          [0, "v", 1, 2, 3],
          [0, "v", 1, 2, 3],
        ],
      }),
      [...body, ...body],
    );
    expect(decodeError(twice).message).toMatch('pair [0,"v",1,2,3]: duplicate');
  });

  it("truncated tensors, trailing bytes, and NaN or infinite values in A or in B", () => {
    expect(decodeError(assemble(header(), body.slice(0, 4))).message).toMatch(
      /truncated: layer 0 v needs 20 bytes at offset \d+, the data has \d+/,
    );
    expect(decodeError(assemble(header(), [...body, 9])).message).toMatch(
      /^adapter peer X: 4 trailing bytes after the last tensor/,
    );
    expect(decodeError(assemble(header(), [1, NaN, 3, 4, 5])).message).toMatch(/layer 0 v: NaN or infinite values/);
    expect(decodeError(assemble(header(), [1, 2, 3, 4, -Infinity])).message).toMatch(
      /layer 0 v: NaN or infinite values/,
    );
    expect(decodeError(assemble(header(), [Infinity, 2, 3, 4, 5])).message).toMatch(
      /layer 0 v: NaN or infinite values/,
    );
  });
});

describe("canonical encoding: edges a mutation run found untested", () => {
  it("writes family llama for an adapter that names none", () => {
    const { family: _qwen3, ...unnamed } = small;
    const bytes = encodeAdapter(unnamed);
    expect(decodeAdapter(bytes, "x").family).toBe("llama");
    expect(new TextDecoder().decode(bytes)).toContain('"family":"llama"');
  });

  it("reads the header length of bytes that are only magic and length (an empty header is not JSON, not bad magic)", () => {
    expect(() => decodeAdapter(assemble(null, [], { headerText: "" }), "x")).toThrow(/header is not valid JSON/);
  });

  it("refuses a header with bytes that are not UTF-8, even inside a string JSON would take", () => {
    const bytes = encodeAdapter({ ...small, baseModel: "tiny!" });
    const at = new TextDecoder().decode(bytes).indexOf("tiny!") + 4;
    bytes[at] = 0xff; // "tiny\xff": JSON.parse of a lenient decoding would read baseModel "tiny\ufffd"
    expect(() => decodeAdapter(bytes, "x")).toThrow(/header is not valid JSON/);
  });
});
