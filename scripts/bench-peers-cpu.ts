// `bash scripts/run.sh node scripts/bench-peers-cpu.ts [--threads N] [--rounds N] [--tokens N]`
// CPU time (all threads of this process, process.cpuUsage) and wall time per workload, llama.cpp and ours in one
// process, interleaved: batch-1 decode (ms of CPU a token) and time to first token of a 16- and a 256-token
// prompt. The CPU a peer spends does not depend on the share of a busy machine its process gets, so this
// compares the work where bench:peers's wall-clock ratios follow the scheduler. Needs the model and the peer
// that `npm run bench:peers` prepares (.cache/bench/peers-12x768-f32.gguf, .cache/peers/).
import { join, resolve } from "node:path";
import { createBackend } from "../node/engine/backend/select.ts";
import { loadModel } from "../node/engine/formats/load-model.ts";
import { llamaCppRunner, loadNodeLlamaCpp, type PeerRunner } from "./bench/peers/llama-cpp.ts";
import { ourRunner } from "./bench/peers/ours.ts";
import { prompts } from "./bench/workloads.ts";
import { scriptArgs } from "./script-args.ts";

const root = resolve(import.meta.dirname, "..");
const values = scriptArgs(
  "CPU time and wall time per workload, llama.cpp and ours in one process, interleaved (batch 1, TTFT 16 and 256).",
  "node scripts/bench-peers-cpu.ts [--threads N] [--rounds N] [--tokens N]",
  {
    threads: { type: "string", default: "1", help: "threads on each side" },
    rounds: { type: "string", default: "2", help: "interleaved rounds" },
    tokens: { type: "string", default: "24", help: "tokens decoded per batch-1 run" },
  },
);
const threads = Number(values.threads);
const tokens = Number(values.tokens);
const modelFile = join(root, ".cache", "bench", "peers-12x768-f32.gguf");
const model = await loadModel(modelFile);
const llamaModule = await loadNodeLlamaCpp(join(root, ".cache", "peers"), (line) => console.error(line));
const backend = await createBackend("simd", model.weights, {
  numBlocks: 64,
  blockSize: 16,
  adapterSlots: 1,
  maxRank: 16,
  threads,
});
const ours = await ourRunner(model, backend, []);
const llama = await llamaCppRunner(llamaModule, modelFile, new Map(), threads, 512);
const cpuMs = (): number => {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1000;
};
const measure = async (fn: () => Promise<unknown>): Promise<{ cpu: number; wall: number }> => {
  const [cpu, wall] = [cpuMs(), performance.now()];
  await fn();
  return { cpu: cpuMs() - cpu, wall: performance.now() - wall };
};
const vocab = model.weights.config.vocabSize;
const [prompt16] = prompts(1, 16, vocab, 116);
const [prompt256] = prompts(1, 256, vocab, 356);
const decodePrompts = prompts(1, 16, vocab, 1);
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const [name, runner] of [
      ["llama.cpp", llama],
      ["ours", ours],
    ] as [string, PeerRunner][]) {
      const b1 = await measure(() => runner.decode([null], decodePrompts, tokens));
      const t16 = await measure(() => runner.ttft(prompt16));
      const t256 = await measure(() => runner.ttft(prompt256));
      const perToken = (ms: number): string => (ms / (tokens + 1)).toFixed(1);
      console.log(
        `${name} (${threads} thread(s)): b1 CPU ${perToken(b1.cpu)} ms/token, wall ${perToken(b1.wall)}; ` +
          `ttft16 CPU ${t16.cpu.toFixed(0)} ms, wall ${t16.wall.toFixed(0)}; ` +
          `ttft256 CPU ${t256.cpu.toFixed(0)} ms, wall ${t256.wall.toFixed(0)}`,
      );
    }
  }
} finally {
  await ours.close();
  await backend.close();
  await llama.close();
}
