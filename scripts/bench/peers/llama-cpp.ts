// llama.cpp as the peer of the CPU benchmark, through node-llama-cpp 3.21.1. It is never a project dependency:
// installed on first use into .cache/peers/ (its CPU binary ships inside @node-llama-cpp/linux-x64, so with
// NODE_LLAMA_CPP_SKIP_DOWNLOAD and --ignore-scripts nothing is downloaded or built; --omit=optional leaves out
// the CUDA and Vulkan packages and the other platforms).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { arch, platform } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export const LLAMA_CPP_VERSION = "3.21.1";

/** The parts of node-llama-cpp's API the benchmark calls. */
interface LlamaSequence {
  evaluate(tokens: number[], options?: { temperature?: number }): AsyncGenerator<number, void, void>;
  dispose(): void;
}
interface LlamaContext {
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
}
interface LlamaModel {
  createContext(options: {
    contextSize: number;
    sequences: number;
    batchSize: number;
    threads: number;
    lora?: { adapters: { filePath: string }[] };
  }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(options: { modelPath: string; gpuLayers: number }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(options: {
    gpu: false;
    build: "never";
    skipDownload: true;
    maxThreads: number;
    logLevel: string;
  }): Promise<Llama>;
}

/** Installs node-llama-cpp into `dir` unless it is there; returns the module. */
export async function loadNodeLlamaCpp(dir: string, log: (line: string) => void): Promise<NodeLlamaCpp> {
  const binary = `@node-llama-cpp/${platform()}-${arch()}`;
  const entry = join(dir, "node_modules", "node-llama-cpp", "dist", "index.js");
  if (!existsSync(entry) || !existsSync(join(dir, "node_modules", binary))) {
    mkdirSync(dir, { recursive: true });
    if (!existsSync(join(dir, "package.json")))
      writeFileSync(join(dir, "package.json"), '{ "name": "openlora-peers", "private": true }\n');
    log(`installing node-llama-cpp ${LLAMA_CPP_VERSION} into ${dir} (first use)`);
    const started = performance.now();
    const result = spawnSync(
      "npm",
      [
        "install",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        "--omit=optional",
        "--save-exact",
        `node-llama-cpp@${LLAMA_CPP_VERSION}`,
        `${binary}@${LLAMA_CPP_VERSION}`,
      ],
      {
        cwd: dir,
        stdio: ["ignore", "inherit", "inherit"],
        env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true" },
      },
    );
    if (result.status !== 0)
      throw new Error(`npm install of node-llama-cpp failed (${result.status ?? result.error?.message})`);
    log(`installed in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
  return (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
}

/** What one peer run measures; the same shape as ours. */
export interface PeerRunner {
  /** Steady-state aggregate decode tok/s of prompts decoded together, one per adapter (null: none). */
  decode(adapters: (string | null)[], prompts: number[][], tokens: number): Promise<number>;
  /** Milliseconds from submitting a prompt to its first generated token. */
  ttft(prompt: number[]): Promise<number>;
  close(): Promise<void>;
}

/** Times each sequence's generated tokens; aggregate tok/s from the moment all have their first token. */
export function steadyRate(times: number[][]): number {
  const start = Math.max(...times.map((t) => t[0]));
  const end = Math.max(...times.map((t) => t[t.length - 1]));
  const tokens = times.reduce((n, t) => n + t.filter((x) => x > start).length, 0);
  return (1000 * tokens) / (end - start);
}

/**
 * llama.cpp on the CPU: base-model batches as sequences of one context (llama.cpp batches them in one decode),
 * adapters as one context each (a context holds one adapter set), all running at once as a server would.
 */
export async function llamaCppRunner(
  module: NodeLlamaCpp,
  modelPath: string,
  loraFiles: Map<string, string>,
  threads: number,
  contextSize: number,
): Promise<PeerRunner> {
  const llama = await module.getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    maxThreads: threads,
    logLevel: "error",
  });
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const generate = async (
    sequence: LlamaSequence,
    prompt: number[],
    tokens: number,
    times: number[],
  ): Promise<void> => {
    for await (const _token of sequence.evaluate(prompt, { temperature: 0 })) {
      times.push(performance.now());
      if (times.length >= tokens) break;
    }
  };
  return {
    async decode(adapters, prompts, tokens) {
      const contexts: LlamaContext[] = [];
      try {
        const sequences: LlamaSequence[] = [];
        if (adapters.every((a) => a === null)) {
          // contextSize is per sequence in node-llama-cpp (it allocates contextSize x sequences cells).
          const context = await model.createContext({
            contextSize,
            sequences: adapters.length,
            batchSize: 512,
            threads,
          });
          contexts.push(context);
          for (let i = 0; i < adapters.length; i++) sequences.push(context.getSequence());
        } else {
          for (const adapter of adapters) {
            const lora = adapter === null ? undefined : { adapters: [{ filePath: loraFiles.get(adapter)! }] };
            const context = await model.createContext({ contextSize, sequences: 1, batchSize: 512, threads, lora });
            contexts.push(context);
            sequences.push(context.getSequence());
          }
        }
        const times = sequences.map((): number[] => []);
        await Promise.all(sequences.map((sequence, i) => generate(sequence, prompts[i], tokens, times[i])));
        return steadyRate(times);
      } finally {
        for (const context of contexts) await context.dispose();
      }
    },
    async ttft(prompt) {
      const context = await model.createContext({ contextSize, sequences: 1, batchSize: 512, threads });
      try {
        const started = performance.now();
        const times: number[] = [];
        await generate(context.getSequence(), prompt, 1, times);
        return times[0] - started;
      } finally {
        await context.dispose();
      }
    },
    async close() {
      await model.dispose();
      await llama.dispose();
    },
  };
}
