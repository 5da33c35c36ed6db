// `npm run bench:peers [-- --quick] [--dtype f32|f16|q8_0|q4_0] [--threads N] [--llama-threads N] [--tokens N]
//   [--rounds N] [--backend simd|webgpu|cpu]`
// This project against llama.cpp (node-llama-cpp 3.21.1, installed into .cache/peers/ on first use) on the same
// random 12-layer dim-768 model (GGUF) and the same rank-16 q/k/v/o adapters (PEFT for us, GGUF LoRA for
// llama.cpp), workload by workload back to back in one run: batch-1 decode, 8 and 32 requests on no adapter
// and on distinct adapters, time to first token of a 16- and a 256-token prompt. Each workload runs in
// `--rounds` interleaved rounds (llama.cpp, ours, llama.cpp, ours, ...) and each side keeps its best: on a
// machine shared with other work, a side measured in a busier minute would otherwise lose by the minute. Writes bench/peers.json and
// the "peers" table of BENCHMARKS.md, each figure with its ratio and goal.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createBackend, type BackendChoice } from "../node/engine/backend/select.ts";
import { writeGgufModel } from "../node/engine/formats/gguf-write.ts";
import { loadModel } from "../node/engine/formats/load-model.ts";
import { randomModelInput } from "../node/engine/formats/random-model.ts";
import { WEIGHT_DTYPES } from "../node/engine/formats/weight-codec.ts";
import type { WeightDType } from "../node/engine/model/weights.ts";
import { copyBandwidth } from "./bench/copy.ts";
import { decodeStepBytes } from "./bench/step-bytes.ts";
import { SHAPES, shapeConfig } from "./bench/model.ts";
import { benchAdapters } from "./bench/peers/adapters.ts";
import { LLAMA_CPP_VERSION, llamaCppRunner, loadNodeLlamaCpp } from "./bench/peers/llama-cpp.ts";
import { ourRunner } from "./bench/peers/ours.ts";
import { round } from "./bench/stats.ts";
import { prompts } from "./bench/workloads.ts";
import { scriptArgs } from "./script-args.ts";

const root = resolve(import.meta.dirname, "..");
const values = scriptArgs(
  "This project's CPU backend against llama.cpp (node-llama-cpp 3.21.1, installed into .cache/peers on first " +
    "use) on the same model and adapters: batch 1, 8 and 32 requests with and without distinct adapters, time to " +
    "first token.",
  "npm run bench:peers -- [--quick] [--dtype f32|f16|bf16|q8_0|q4_0] [--threads N] [--rounds N]",
  {
    quick: { type: "boolean", default: false, help: "a smaller model and fewer tokens" },
    dtype: { type: "string", default: "f32", help: "the model's weight format" },
    threads: { type: "string", help: "our backend's threads (default the core count)" },
    "llama-threads": { type: "string", help: "llama.cpp's threads" },
    tokens: { type: "string", help: "tokens generated per request" },
    rounds: { type: "string", default: "2", help: "interleaved rounds per workload (the best of each side)" },
    backend: { type: "string", default: "simd", help: "our backend" },
    out: { type: "string", default: join(root, "bench", "peers.json"), help: "the JSON written" },
    markdown: {
      type: "string",
      default: join(root, "BENCHMARKS.md"),
      help: "the Markdown file whose table is replaced",
    },
  },
);
const quick = values.quick === true;
const dtype = values.dtype as WeightDType;
if (!WEIGHT_DTYPES.includes(dtype)) throw new Error(`--dtype must be one of ${WEIGHT_DTYPES.join(", ")}, got ${dtype}`);
const threads = values.threads === undefined ? availableParallelism() : Number(values.threads);
// llama.cpp's threads spin at every op's barrier: on a machine shared with other work, 2 threads can be far
// slower than 1 (each barrier waits out a descheduled thread), so the peer's count is a separate choice.
const llamaThreads = values["llama-threads"] === undefined ? threads : Number(values["llama-threads"]);
const choice = values.backend as BackendChoice;
/** Generated tokens per sequence in the decode workloads, prompt tokens before them. */
const TOKENS = values.tokens === undefined ? (quick ? 16 : 32) : Number(values.tokens);
const PROMPT = 16;
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1)
  throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
const RANK = 16;
const TARGETS = ["q", "k", "v", "o"] as const;
const CONTEXT = 512;

const began = performance.now();
const log = (line: string): void =>
  console.error(`[bench:peers ${((performance.now() - began) / 1000).toFixed(1)}s] ${line}`);

// The model, as GGUF (both peers read the same file).
const shapeName = quick ? "quick" : "default";
const config = { ...shapeConfig(SHAPES[shapeName]), maxSeqLen: 1024 };
const name = `peers-${config.nLayers}x${config.dim}-${dtype}`;
const modelFile = join(root, ".cache", "bench", `${name}.gguf`);
mkdirSync(dirname(modelFile), { recursive: true });
if (!existsSync(modelFile)) {
  writeGgufModel(modelFile, randomModelInput(config, 0, {}, name), { dtype });
  log(`generated ${modelFile}`);
}
const model = await loadModel(modelFile);
const adapters = await benchAdapters(
  join(root, ".cache", "peers", "adapters", name),
  config,
  model.name,
  32,
  RANK,
  TARGETS,
);
log(`model ${name} and ${adapters.length} rank-${RANK} ${TARGETS.join("/")} adapters ready`);

const llamaModule = await loadNodeLlamaCpp(join(root, ".cache", "peers"), log);
const numBlocks = 32 * Math.ceil((PROMPT + TOKENS + 2) / 16) + 2 * Math.ceil((256 + 2) / 16) + 8;
const backend = await createBackend(choice, model.weights, {
  numBlocks,
  blockSize: 16,
  adapterSlots: 32,
  maxRank: RANK,
  threads,
});
log(`ours: ${backend.device}; llama.cpp: node-llama-cpp ${LLAMA_CPP_VERSION}, ${llamaThreads} threads`);
const ours = await ourRunner(
  model,
  backend,
  adapters.map((a) => a.peft),
);
const llama = await llamaCppRunner(
  llamaModule,
  modelFile,
  new Map(adapters.map((a) => [a.peft, a.gguf])),
  llamaThreads,
  CONTEXT,
);

interface Pair {
  llama_cpp: number;
  ours: number;
  /** ours / llama.cpp for rates, llama.cpp / ours for times: above 1 means we are better. */
  ratio: number;
}
const figures: Record<string, Pair> = {};
const rate = async (label: string, adapterKeys: (string | null)[]): Promise<void> => {
  const ps = prompts(adapterKeys.length, PROMPT, config.vocabSize, adapterKeys.length);
  const ourKeys = adapterKeys.map((k) => (k === null ? null : ours.adapterIds.get(k)!));
  let theirs = 0;
  let mine = 0;
  for (let round = 0; round < ROUNDS; round++) {
    theirs = Math.max(theirs, await llama.decode(adapterKeys, ps, TOKENS));
    mine = Math.max(mine, await ours.decode(ourKeys, ps, TOKENS));
  }
  figures[label] = { llama_cpp: round(theirs), ours: round(mine), ratio: round(mine / theirs) };
  log(`${label}: llama.cpp ${theirs.toFixed(1)} tok/s, ours ${mine.toFixed(1)} tok/s (x${(mine / theirs).toFixed(2)})`);
};
const ttft = async (label: string, length: number): Promise<void> => {
  const prompt = prompts(1, length, config.vocabSize, 100 + length)[0];
  let theirs = Infinity;
  let mine = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    theirs = Math.min(theirs, await llama.ttft(prompt));
    mine = Math.min(mine, await ours.ttft(prompt));
  }
  figures[label] = { llama_cpp: round(theirs), ours: round(mine), ratio: round(theirs / mine) };
  log(`${label}: llama.cpp ${theirs.toFixed(0)} ms, ours ${mine.toFixed(0)} ms (x${(theirs / mine).toFixed(2)})`);
};

const loadAverage = (): string =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(" / ");
const loadBefore = loadAverage();
let copyGbps = 0;
try {
  copyGbps = (await copyBandwidth(backend, quick)).gbps;
  await rate("decode_tps_b1", [null]);
  await rate("decode_tps_base_b8", new Array(8).fill(null));
  await rate("decode_tps_base_b32", new Array(32).fill(null));
  await rate(
    "decode_tps_lora_b8",
    adapters.slice(0, 8).map((a) => a.peft),
  );
  await rate(
    "decode_tps_lora_b32",
    adapters.map((a) => a.peft),
  );
  await ttft("ttft_ms_prompt16", 16);
  await ttft("ttft_ms_prompt256", 256);
} finally {
  await ours.close();
  await backend.close();
  await llama.close();
}

const loadAfter = loadAverage();
const stepBytes = decodeStepBytes(model.weights);
const bandwidthUtil = (stepBytes * figures.decode_tps_b1.ours) / (copyGbps * 1e9);
const results = {
  model: name,
  dtype,
  threads,
  llama_threads: llamaThreads,
  backend: backend.device,
  llama_cpp: `node-llama-cpp ${LLAMA_CPP_VERSION}`,
  tokens_per_sequence: TOKENS,
  prompt_tokens: PROMPT,
  adapters: `rank ${RANK} on ${TARGETS.join("/")}`,
  rounds: ROUNDS,
  load_average_before: loadBefore,
  load_average_after: loadAfter,
  copy_gbps: round(copyGbps),
  bandwidth_util_b1: round(bandwidthUtil),
  ...figures,
};
mkdirSync(dirname(values.out!), { recursive: true });
writeFileSync(values.out!, JSON.stringify(results, null, 2) + "\n");
log(`wrote ${values.out}`);

const GOALS: Record<string, { min: number; text: string }> = {
  decode_tps_b1: { min: 0.9, text: ">= 0.9x" },
  decode_tps_lora_b8: { min: 1.5, text: ">= 1.5x" },
  decode_tps_lora_b32: { min: 2, text: ">= 2x" },
  ttft_ms_prompt16: { min: 1, text: "<= llama.cpp's" },
  ttft_ms_prompt256: { min: 1, text: "<= llama.cpp's" },
};
const rows = Object.entries(figures).map(([label, f]) => {
  const goal = GOALS[label];
  const verdict = goal ? (f.ratio >= goal.min ? "met" : "**missed**") : "";
  return `| \`${label}\` | ${f.llama_cpp} | ${f.ours} | ${f.ratio} | ${goal?.text ?? ""} | ${verdict} |`;
});
const key = quick ? "peers-quick" : "peers";
const block = [
  `<!-- bench:${key}:begin -->`,
  `## ${quick ? "Quick peer run" : "Peer run"}: ${name}, ours on ${threads} threads vs llama.cpp on ${llamaThreads}`,
  "",
  `Ours: ${backend.device}. llama.cpp: node-llama-cpp ${LLAMA_CPP_VERSION}, CPU build, ${llamaThreads} threads,`,
  "base batches as",
  `sequences of one context, adapters one context each (all at once). ${TOKENS} greedy tokens per sequence after a`,
  `${PROMPT}-token prompt; adapters rank ${RANK} on ${TARGETS.join("/")}. Each side's best of ${ROUNDS} interleaved`,
  `rounds. Load average ${loadBefore} before the run, ${loadAfter} after. Ratio: ours / llama.cpp for tok/s,`,
  `llama.cpp / ours for times (above 1: we are better). Copy bandwidth ${round(copyGbps)} GB/s; our batch-1`,
  `decode reads weights at ${round(bandwidthUtil)} of it.`,
  "",
  "| figure | llama.cpp | ours | ratio | goal | |",
  "|---|---|---|---|---|---|",
  ...rows,
  `<!-- bench:${key}:end -->`,
].join("\n");
const file = values.markdown!;
let text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n";
const pattern = new RegExp(`<!-- bench:${key}:begin -->[\\s\\S]*?<!-- bench:${key}:end -->`);
if (pattern.test(text)) text = text.replace(pattern, block);
else {
  const analysis = text.indexOf("\n## Analysis");
  text =
    analysis >= 0 ? `${text.slice(0, analysis)}\n${block}\n${text.slice(analysis)}` : `${text.trimEnd()}\n\n${block}\n`;
}
writeFileSync(file, text);
log(`wrote the ${key} table of ${file}`);
