// One entry point for every backbone format: a file or a folder in, a validated LoadedModel out.
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import { ModelFormatError } from "../errors.ts";
import { configProblem, projectionShape } from "../model/config.ts";
import type { LoadedModel, ModelIdentity, ModelWeights, WeightMatrix } from "../model/weights.ts";
import { rowBytes } from "./weight-codec.ts";
import { ggufModelIdentity, loadGgufModel } from "./gguf-model.ts";
import { hfModelIdentity, loadHfModel } from "./hf-model.ts";
import { loadLlama2cModel, parseLlama2cHeader } from "./llama2c.ts";
import { readBytes, withModelFile } from "./file-io.ts";

/** llama2.c tokenizer files: tok512.bin, tok32000.bin, tokenizer.bin. */
const isTokenizerBin = (name: string): boolean => /^tok.*\.bin$/i.test(name);

/**
 * Loads a model from a path:
 * - a `.bin` file: llama2.c checkpoint, with its tokenizer tok*.bin (or tokenizer.bin) beside it;
 * - a `.gguf` file;
 * - a folder: config.json means Hugging Face; otherwise a llama2.c .bin (+ tok*.bin); otherwise a .gguf.
 *   The .bin wins over a .gguf in the same folder, so `models/stories260K` loads its llama2.c checkpoint.
 * The result is checked: config invariants and every tensor's length against the config.
 */
export async function loadModel(path: string): Promise<LoadedModel> {
  const found = locateModel(path);
  const model =
    found.format === "safetensors"
      ? loadHfModel(found.path)
      : found.format === "gguf"
        ? loadGgufModel(found.path)
        : loadLlama2cModel(found.path, findLlama2cTokenizer(found.path));
  checkLoadedModel(model);
  return model;
}

/**
 * A model's identity (name, config, adapter q/k order) from the same paths loadModel takes, reading headers and
 * config files only: what an adapter's id is computed against without loading gigabytes of weights.
 */
export async function modelIdentity(path: string): Promise<ModelIdentity> {
  const found = locateModel(path);
  if (found.format === "safetensors") return hfModelIdentity(found.path);
  if (found.format === "gguf") return ggufModelIdentity(found.path);
  const { config } = withModelFile(found.path, (f) =>
    parseLlama2cHeader(readBytes(f, 0, Math.min(28, f.size), "the header"), found.path),
  );
  return {
    name: basename(found.path).replace(/\.bin$/, ""),
    source: found.path,
    format: "llama2c",
    qkBasis: "interleaved",
    config,
  };
}

/** Where the model of a path is and in which format (the rules loadModel documents). */
function locateModel(path: string): { format: LoadedModel["format"]; path: string } {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new ModelFormatError(path, "no such file or folder");
  }
  return stat.isDirectory() ? locateInFolder(path) : locateFile(path);
}

function locateFile(path: string): { format: LoadedModel["format"]; path: string } {
  const ext = extname(path).toLowerCase();
  if (ext === ".gguf") return { format: "gguf", path };
  if (ext === ".bin") {
    if (isTokenizerBin(basename(path)))
      throw new ModelFormatError(path, "this is a llama2.c tokenizer file, not a model; pass the checkpoint .bin");
    return { format: "llama2c", path };
  }
  if (ext === ".safetensors" || ext === ".json") {
    throw new ModelFormatError(
      path,
      "part of a Hugging Face model: pass the folder that holds config.json, the safetensors and tokenizer.json",
    );
  }
  throw new ModelFormatError(
    path,
    `unknown model file type ${JSON.stringify(ext)}: expected .gguf, a llama2.c .bin, or a Hugging Face folder`,
  );
}

function locateInFolder(folder: string): { format: LoadedModel["format"]; path: string } {
  if (existsSync(join(folder, "config.json"))) return { format: "safetensors", path: folder };
  const names = readdirSync(folder)
    .filter((name) => statSync(join(folder, name)).isFile())
    .sort();
  const bins = names.filter((n) => n.toLowerCase().endsWith(".bin") && !isTokenizerBin(n));
  const ggufs = names.filter((n) => n.toLowerCase().endsWith(".gguf"));
  if (bins.length > 1)
    throw new ModelFormatError(folder, `several llama2.c checkpoints (${bins.join(", ")}): pass one of them`);
  if (bins.length === 1) return locateFile(join(folder, bins[0]));
  if (ggufs.length > 1)
    throw new ModelFormatError(folder, `several GGUF files (${ggufs.join(", ")}): pass one of them`);
  if (ggufs.length === 1) return { format: "gguf", path: join(folder, ggufs[0]) };
  throw new ModelFormatError(
    folder,
    "no model found: looked for config.json (Hugging Face), a llama2.c .bin with tok*.bin, or a .gguf",
  );
}

/**
 * The tokenizer beside a llama2.c checkpoint, by name: tok<vocab>.bin first, then tokenizer.bin (llama2.c's
 * default), then any other tok*.bin. Its file does not store the token count; the llama2.c reader then checks
 * it holds exactly the checkpoint's vocab, so a wrong pick fails naming the tokenizer file.
 */
export function findLlama2cTokenizer(checkpoint: string): string {
  const folder = dirname(checkpoint);
  const vocab = withModelFile(
    checkpoint,
    (f) => parseLlama2cHeader(readBytes(f, 0, Math.min(28, f.size), "the header"), checkpoint).config.vocabSize,
  );
  const preferred = [`tok${vocab}.bin`, "tokenizer.bin"];
  const others = readdirSync(folder).filter(isTokenizerBin).sort();
  const candidates = [
    ...preferred.filter((n) => existsSync(join(folder, n))),
    ...others.filter((n) => !preferred.includes(n)),
  ];
  if (candidates.length === 0) {
    throw new ModelFormatError(
      checkpoint,
      `missing tokenizer: looked for tok${vocab}.bin, tokenizer.bin or tok*.bin in ${folder}`,
    );
  }
  return join(folder, candidates[0]);
}

/** Throws ModelFormatError naming the source when the weights do not fit their config. */
export function checkLoadedModel(model: LoadedModel): void {
  const problem = configProblem(model.weights.config) ?? weightsProblem(model.weights);
  if (problem) throw new ModelFormatError(model.source, problem);
  if (model.tokenizer.vocabSize > model.weights.config.vocabSize) {
    throw new ModelFormatError(
      model.source,
      `tokenizer has ${model.tokenizer.vocabSize} tokens, the model ${model.weights.config.vocabSize} embeddings`,
    );
  }
}

/** The first tensor whose size differs from what the config implies, as a message; null when all fit. */
export function weightsProblem(weights: ModelWeights): string | null {
  const c = weights.config;
  const vector = (what: string, array: Float32Array | undefined, length: number): string | null =>
    !(array instanceof Float32Array)
      ? `${what} is missing`
      : array.length !== length
        ? `${what} has ${array.length} values, the config needs ${length}`
        : null;
  const matrix = (what: string, m: WeightMatrix | undefined, rows: number, cols: number): string | null =>
    m === undefined
      ? `${what} is missing`
      : m.rows !== rows || m.cols !== cols
        ? `${what} is [${m.rows}, ${m.cols}], the config needs [${rows}, ${cols}]`
        : m.data.length !== rows * rowBytes(m.dtype, cols)
          ? `${what} holds ${m.data.length} bytes, ${m.dtype} [${rows}, ${cols}] needs ${rows * rowBytes(m.dtype, cols)}`
          : null;
  const checks: (string | null)[] = [
    matrix("token embedding", weights.tokenEmbedding, c.vocabSize, c.dim),
    vector("final norm", weights.finalNorm, c.dim),
    matrix("classifier", weights.classifier, c.vocabSize, c.dim),
    weights.layers.length !== c.nLayers ? `${weights.layers.length} layers, the config says ${c.nLayers}` : null,
  ];
  const targets = { wq: "q", wk: "k", wv: "v", wo: "o", wGate: "gate", wUp: "up", wDown: "down" } as const;
  weights.layers.forEach((layer, l) => {
    checks.push(
      vector(`layer ${l} attention norm`, layer.attnNorm, c.dim),
      vector(`layer ${l} ffn norm`, layer.ffnNorm, c.dim),
    );
    for (const [key, target] of Object.entries(targets) as [
      keyof typeof targets,
      (typeof targets)[keyof typeof targets],
    ][]) {
      const { inDim, outDim } = projectionShape(c, target);
      checks.push(matrix(`layer ${l} ${target} projection`, layer[key], outDim, inDim));
    }
  });
  return checks.find((p) => p !== null) ?? null;
}
