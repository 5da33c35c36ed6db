// llama2.c "legacy" checkpoints (run.c's format): the embedded stories260K model.
import { basename } from "node:path";
import { ModelFormatError } from "../errors.ts";
import type { ModelConfig } from "../model/config.ts";
import { configProblem } from "../model/config.ts";
import type { LayerWeights, LoadedModel, ModelWeights, WeightMatrix } from "../model/weights.ts";
import { readLlama2cTokenizer } from "../tokenizer/sentencepiece-bpe.ts";
import { readBytes, readFloat32, withModelFile } from "./file-io.ts";
import { float32Matrix } from "./weight-codec.ts";

const HEADER_BYTES = 28;
/** llama2.c's export.py versions 1/2 start with "ak42"; run.c cannot read them and neither do we. */
const EXPORT_MAGIC = 0x616b3432;

/** What the 7-int header says, plus whether the classifier is tied (positive vocab_size). */
export interface Llama2cHeader {
  config: ModelConfig;
  sharedClassifier: boolean;
}

/** The header of a llama2.c checkpoint, checked for sense. */
export function parseLlama2cHeader(bytes: Uint8Array, file: string): Llama2cHeader {
  if (bytes.length < HEADER_BYTES)
    throw new ModelFormatError(
      file,
      `truncated llama2.c checkpoint: ${bytes.length} bytes, the header needs ${HEADER_BYTES}`,
    );
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const ints = Array.from({ length: 7 }, (_, i) => view.getInt32(4 * i, true));
  if (ints[0] === EXPORT_MAGIC) {
    throw new ModelFormatError(
      file,
      `llama2.c export version ${ints[1]} ("ak42" magic) is not supported; export with --version 0 (legacy)`,
    );
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = ints;
  const config: ModelConfig = {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim: nHeads > 0 ? dim / nHeads : 0,
    vocabSize: Math.abs(vocab),
    maxSeqLen: seqLen,
    normEps: 1e-5, // llama2.c hard-codes these two
    ropeTheta: 10000,
  };
  const problem = configProblem(config);
  if (problem) throw new ModelFormatError(file, `not a llama2.c checkpoint, header [${ints.join(", ")}]: ${problem}`);
  return { config, sharedClassifier: vocab > 0 };
}

/** Float count of every array in file order, so the size check and the reader agree by construction. */
function layout(header: Llama2cHeader): { name: string; count: number }[] {
  const { dim, hiddenDim, nLayers: L, vocabSize, maxSeqLen, headDim } = header.config;
  const kvDim = header.config.nKvHeads * headDim;
  const parts = [
    { name: "token_embedding", count: vocabSize * dim },
    { name: "rms_att", count: L * dim },
    { name: "wq", count: L * dim * dim },
    { name: "wk", count: L * kvDim * dim },
    { name: "wv", count: L * kvDim * dim },
    { name: "wo", count: L * dim * dim },
    { name: "rms_ffn", count: L * dim },
    { name: "w1", count: L * hiddenDim * dim },
    { name: "w2", count: L * dim * hiddenDim },
    { name: "w3", count: L * hiddenDim * dim },
    { name: "rms_final", count: dim },
    { name: "freq_cis_real", count: (maxSeqLen * headDim) / 2 },
    { name: "freq_cis_imag", count: (maxSeqLen * headDim) / 2 },
  ];
  if (!header.sharedClassifier) parts.push({ name: "wcls", count: vocabSize * dim });
  return parts;
}

/** The exact byte size a checkpoint with this header has. */
export function llama2cFileSize(header: Llama2cHeader): number {
  return HEADER_BYTES + 4 * layout(header).reduce((sum, part) => sum + part.count, 0);
}

/**
 * Reads a llama2.c checkpoint into canonical weights. llama2.c already stores [out, in] matrices and the
 * interleaved RoPE basis, so nothing is permuted. Each tensor is read at its offset into its own array.
 */
export function readLlama2cCheckpoint(file: string): ModelWeights {
  return withModelFile(file, (f) => {
    const header = parseLlama2cHeader(readBytes(f, 0, Math.min(HEADER_BYTES, f.size), "the header"), file);
    const expected = llama2cFileSize(header);
    if (f.size !== expected) {
      const { config: c } = header;
      throw new ModelFormatError(
        file,
        `${f.size < expected ? "truncated" : "oversized"} llama2.c checkpoint: ${f.size} bytes, but the header ` +
          `(dim ${c.dim}, hidden ${c.hiddenDim}, layers ${c.nLayers}, heads ${c.nHeads}/${c.nKvHeads}, vocab ${c.vocabSize}, ` +
          `seq ${c.maxSeqLen}, ${header.sharedClassifier ? "shared" : "separate"} classifier) implies ${expected}`,
      );
    }
    const offsets = new Map<string, number>();
    let at = HEADER_BYTES;
    for (const part of layout(header)) {
      offsets.set(part.name, at);
      at += 4 * part.count;
    }
    const { config } = header;
    const kvDim = config.nKvHeads * config.headDim;
    // Layer l of a stacked [L, ...] array of `per` floats each.
    const slice = (name: string, l: number, per: number): Float32Array =>
      readFloat32(f, offsets.get(name)! + 4 * l * per, per, `${name}[${l}]`);
    const matrix = (name: string, l: number, rows: number, cols: number): WeightMatrix =>
      float32Matrix(rows, cols, slice(name, l, rows * cols));
    const layers: LayerWeights[] = [];
    for (let l = 0; l < config.nLayers; l++) {
      layers.push({
        attnNorm: slice("rms_att", l, config.dim),
        wq: matrix("wq", l, config.dim, config.dim),
        wk: matrix("wk", l, kvDim, config.dim),
        wv: matrix("wv", l, kvDim, config.dim),
        wo: matrix("wo", l, config.dim, config.dim),
        ffnNorm: slice("rms_ffn", l, config.dim),
        wGate: matrix("w1", l, config.hiddenDim, config.dim),
        wUp: matrix("w3", l, config.hiddenDim, config.dim),
        wDown: matrix("w2", l, config.dim, config.hiddenDim),
      });
    }
    const { vocabSize, dim } = config;
    const tokenEmbedding = float32Matrix(
      vocabSize,
      dim,
      readFloat32(f, offsets.get("token_embedding")!, vocabSize * dim, "token_embedding"),
    );
    const finalNorm = readFloat32(f, offsets.get("rms_final")!, config.dim, "rms_final");
    const classifier = header.sharedClassifier
      ? tokenEmbedding
      : float32Matrix(vocabSize, dim, readFloat32(f, offsets.get("wcls")!, vocabSize * dim, "wcls"));
    return { config, tokenEmbedding, layers, finalNorm, classifier };
  });
}

/** A llama2.c checkpoint with its tokenizer file (tok*.bin) into a LoadedModel. */
export function loadLlama2cModel(file: string, tokenizerFile: string): LoadedModel {
  const weights = readLlama2cCheckpoint(file);
  const tokenizer = readLlama2cTokenizer(tokenizerFile, weights.config.vocabSize);
  return {
    name: basename(file).replace(/\.bin$/, ""),
    source: file,
    format: "llama2c",
    qkBasis: "interleaved",
    weights,
    tokenizer,
  };
}
