// The webgpu backend held to the cpu backend on stories260K (on lavapipe where there is no GPU).
// Tolerances:
//   f32 weights: every logit within LOGIT_TOL x max(1, max |cpu logit|) of the cpu backend's, and identical
//   greedy tokens for 60 steps. Same-backend comparisons (batched vs alone, several passes vs one) within
//   SAME_TOL x max |logit|; scrambled vs contiguous block tables bit for bit.
//   f32 weights stored as f16 (the f16 option): F16_TOL relative, greedy tokens not required to match (f16
//   rounding can flip a near tie). Other stored formats: test/engine/webgpu-formats.test.ts.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LoraAdapter } from "../../node/engine/adapter/lora.ts";
import type { Backend, SamplingParams, SequenceStep } from "../../node/engine/backend/backend.ts";
import { createCpuBackend } from "../../node/engine/backend/cpu/cpu-backend.ts";
import { createWebGpuBackend, webgpuAvailable } from "../../node/engine/backend/webgpu/webgpu-backend.ts";
import type { LinearTarget } from "../../node/engine/model/config.ts";
import { createRng } from "../../node/engine/sampling/rng.ts";
import { sampleToken } from "../../node/engine/sampling/sample.ts";
import { DEMO_ADAPTERS, demoAdapter, stories } from "../helpers/stories.ts";
import { argmax, relDiff } from "../../scripts/gpu/parity-lib.ts";
import { randomLora } from "../../scripts/bench/random-adapters.ts";

const LOGIT_TOL = 1e-4;
const SAME_TOL = 1e-5;
const F16_TOL = 5e-3;
const OPTIONS = { numBlocks: 96, blockSize: 16, adapterSlots: 5, maxRank: 16 };
const STEPS = 60;

const model = await stories();
const config = model.weights.config;
const prompt = model.tokenizer.encode("Once upon a time", { bos: true } as never) as unknown as number[];

/** A random in-memory adapter of another rank on some targets only: mixed ranks in one batch. */
const oddAdapter = (rank: number, targets: LinearTarget[], seed: number): LoraAdapter =>
  randomLora(config, { rank, targets, seed }).adapter;

const table = (first: number, n = 6) => Array.from({ length: n }, (_, i) => first + i);

let gpu: Backend;
let cpu: Backend;
const adapters: LoraAdapter[] = [];

beforeAll(async () => {
  expect(await webgpuAvailable(), "no WebGPU adapter: scripts/setup.sh fetches lavapipe").toBe(true);
  gpu = await createWebGpuBackend(model.weights, OPTIONS);
  cpu = createCpuBackend(model.weights, OPTIONS);
  for (const name of DEMO_ADAPTERS) adapters.push(await demoAdapter(name, OPTIONS.maxRank));
  adapters.push(oddAdapter(3, ["q", "v", "down"], 4));
  for (let slot = 0; slot < adapters.length; slot++) {
    await gpu.setAdapter(slot, adapters[slot]);
    await cpu.setAdapter(slot, adapters[slot]);
  }
});
afterAll(async () => {
  await gpu?.close();
});

describe("webgpu backend on stories260K, against the cpu backend", () => {
  it("describes itself", () => {
    expect(gpu.kind).toBe("webgpu");
    expect(gpu.device).toMatch(/^webgpu: /);
    expect(gpu.memoryBytes).toBeGreaterThan(4 * 260_000);
  });

  for (const [slot, name] of [
    [-1, "base"],
    [0, "dragon"],
    [1, "ocean"],
    [2, "robot"],
  ] as const) {
    it(`${name}: logits within ${LOGIT_TOL} and identical greedy tokens for ${STEPS} steps`, async () => {
      const blockTable = table(slot * 8 + 16, 8);
      const greedy = [{ temperature: 0, topK: 0, topP: 1 }];
      const none = new Float32Array(1);
      // Tokens: the GPU picks each on the device (sample, temperature 0), the CPU by argmax of its logits.
      const gpuTokens = Array.from(await gpu.sample([{ tokens: prompt, position: 0, blockTable, slot }], greedy, none));
      let cl = await cpu.forward([{ tokens: prompt, position: 0, blockTable, slot }]);
      const cpuTokens = [argmax(cl)];
      const cpuLogits = [cl];
      for (let i = 0; i < STEPS - 1; i++) {
        const position = prompt.length + i;
        gpuTokens.push((await gpu.sample([{ tokens: [gpuTokens[i]], position, blockTable, slot }], greedy, none))[0]);
        cl = await cpu.forward([{ tokens: [cpuTokens[i]], position, blockTable, slot }]);
        cpuTokens.push(argmax(cl));
        cpuLogits.push(cl);
      }
      expect(gpuTokens).toEqual(cpuTokens);
      // Logits at every step, along the same tokens.
      let worst = relDiff(await gpu.forward([{ tokens: prompt, position: 0, blockTable, slot }]), cpuLogits[0]);
      for (let i = 0; i < STEPS - 1; i++) {
        const gl = await gpu.forward([{ tokens: [cpuTokens[i]], position: prompt.length + i, blockTable, slot }]);
        worst = Math.max(worst, relDiff(gl, cpuLogits[i + 1]));
      }
      expect(worst).toBeLessThanOrEqual(LOGIT_TOL);
      if (name !== "base")
        expect(model.tokenizer.decode(gpuTokens as never)).toMatch(
          name === "dragon" ? /dragon/ : name === "ocean" ? /fish/ : /robot/,
        );
    });
  }

  it("a batch mixing four adapters (ranks 8 and 3) and rows without adapter gives each row what its sequence gives alone", async () => {
    // Prefill rows and decode rows in one step, sequences in an order that is not sorted by slot.
    const seqs: SequenceStep[] = [
      { tokens: prompt, position: 0, blockTable: table(0), slot: 2 },
      { tokens: prompt.slice(0, 3), position: 0, blockTable: table(6), slot: -1 },
      { tokens: prompt, position: 0, blockTable: table(12), slot: 0 },
      { tokens: prompt.slice(0, 2), position: 0, blockTable: table(18), slot: 3 },
      { tokens: prompt, position: 0, blockTable: table(24), slot: 1 },
      { tokens: prompt.slice(0, 4), position: 0, blockTable: table(30), slot: 0 },
      { tokens: prompt, position: 0, blockTable: table(36), slot: -1 },
    ];
    const vocab = config.vocabSize;
    const batched = await gpu.forward(seqs);
    // Then one more step of all of them together: decode rows, and a 3-token prefill chunk for sequence 3.
    const next: SequenceStep[] = seqs.map((s, i) => {
      const first = argmax(batched.subarray(i * vocab, (i + 1) * vocab));
      return { ...s, tokens: i === 3 ? [first, 300, 301] : [first], position: s.tokens.length };
    });
    const batchedNext = await gpu.forward(next);
    for (let i = 0; i < seqs.length; i++) {
      // The same sequence alone, on both backends, in blocks of its own.
      const alone = [
        await gpu.forward([{ ...seqs[i], blockTable: table(60) }]),
        await gpu.forward([{ ...next[i], blockTable: table(60) }]),
      ];
      const ref = [
        await cpu.forward([{ ...seqs[i], blockTable: table(60) }]),
        await cpu.forward([{ ...next[i], blockTable: table(60) }]),
      ];
      [batched, batchedNext].forEach((all, k) => {
        const row = all.subarray(i * vocab, (i + 1) * vocab);
        expect(relDiff(row, alone[k]), `sequence ${i} step ${k} vs alone`).toBeLessThanOrEqual(SAME_TOL);
        expect(relDiff(row, ref[k]), `sequence ${i} step ${k} vs cpu`).toBeLessThanOrEqual(LOGIT_TOL);
      });
    }
  });

  it("block tables in scrambled order give exactly the logits of contiguous ones", async () => {
    const contiguous = [40, 41, 42];
    const scrambled = [77, 45, 90];
    const tokens = [
      ...prompt,
      400,
      401,
      402,
      403,
      404,
      405,
      406,
      407,
      408,
      409,
      410,
      411,
      412,
      413,
      414,
      415,
      416,
      417,
      418,
      419,
      420,
      421,
      422,
      423,
      424,
      425,
      426,
      427,
      428,
      429,
      430,
    ];
    const run = async (blockTable: number[]) => {
      const out: Float32Array[] = [];
      out.push(await gpu.forward([{ tokens: tokens.slice(0, 20), position: 0, blockTable, slot: 1 }]));
      for (let p = 20; p < tokens.length; p++)
        out.push(await gpu.forward([{ tokens: [tokens[p]], position: p, blockTable, slot: 1 }]));
      return out;
    };
    const a = await run(contiguous);
    const b = await run(scrambled);
    a.forEach((logits, i) => expect(Array.from(b[i]), `step ${i}`).toEqual(Array.from(logits)));
  });

  it("a prefill longer than a pass (several submits) equals one pass", async () => {
    const small = await createWebGpuBackend(model.weights, { ...OPTIONS, maxRowsPerPass: 3 });
    try {
      await small.setAdapter(4, adapters[0]);
      const seqs: SequenceStep[] = [
        { tokens: [...prompt, 300, 301, 302], position: 0, blockTable: table(0), slot: 4 },
        { tokens: [1, 500], position: 0, blockTable: table(6), slot: -1 },
        { tokens: [1], position: 0, blockTable: table(12), slot: 4 },
      ];
      const many = await small.forward(seqs);
      const one = await gpu.forward(
        seqs.map((s, i) => ({ ...s, blockTable: table(50 + 6 * i), slot: s.slot === 4 ? 0 : -1 })),
      );
      expect(relDiff(many, one)).toBeLessThanOrEqual(SAME_TOL);
      // Sampling a step of several passes (each sequence's last row in another pass) picks what one pass picks,
      // and what the multi-pass logits say: the argmax of each sequence's row.
      const greedy = seqs.map(() => ({ temperature: 0, topK: 0, topP: 1 }));
      const fresh = seqs.map((s, i) => ({ ...s, blockTable: table(20 + 6 * i) }));
      const ids = Array.from(await small.sample(fresh, greedy, new Float32Array(3)));
      const oneIds = Array.from(
        await gpu.sample(
          fresh.map((s, i) => ({ ...s, blockTable: table(70 + 6 * i), slot: s.slot === 4 ? 0 : -1 })),
          greedy,
          new Float32Array(3),
        ),
      );
      const vocab = config.vocabSize;
      expect(ids).toEqual(seqs.map((_, i) => argmax(many.subarray(i * vocab, (i + 1) * vocab))));
      expect(ids).toEqual(oneIds);
      // And the next decode step, all three rows in one pass, continues from the multi-pass KV.
      const next = await small.sample(
        fresh.map((s, i) => ({ ...s, tokens: [ids[i]], position: s.tokens.length })),
        greedy,
        new Float32Array(3),
      );
      const onCpu = fresh.map((s, i) => ({ ...s, blockTable: table(40 + 6 * i), slot: s.slot === 4 ? 0 : -1 }));
      await cpu.forward(onCpu);
      const cpuNext = await cpu.forward(onCpu.map((s, i) => ({ ...s, tokens: [ids[i]], position: s.tokens.length })));
      expect(Array.from(next)).toEqual(seqs.map((_, i) => argmax(cpuNext.subarray(i * vocab, (i + 1) * vocab))));
    } finally {
      await small.close();
    }
  });

  it("sample() with temperature, top-k and top-p picks what sampleToken picks from the cpu logits", async () => {
    const rng = createRng(11);
    const params: SamplingParams[] = [
      { temperature: 1, topK: 0, topP: 1 },
      { temperature: 0.8, topK: 40, topP: 0.9 },
      { temperature: 1.2, topK: 5, topP: 1 },
      { temperature: 0, topK: 0, topP: 1 },
      { temperature: 0.7, topK: 0, topP: 0.5 },
    ];
    let agree = 0;
    for (let trial = 0; trial < 8; trial++) {
      const steps: SequenceStep[] = params.map((_, i) => ({
        tokens: prompt,
        position: 0,
        blockTable: table(i * 6),
        slot: ((i + trial) % 5) - 1,
      }));
      const uniforms = Float32Array.from(params, () => rng());
      const ids = await gpu.sample(steps, params, uniforms);
      const logits = await cpu.forward(steps);
      ids.forEach((id, i) => {
        const l = logits.subarray(i * config.vocabSize, (i + 1) * config.vocabSize);
        const u = uniforms[i];
        const ok = [u, Math.max(0, u - 1e-4), Math.min(0.9999999, u + 1e-4)].some(
          (w) => sampleToken(l, params[i], w) === id,
        );
        expect(ok, `trial ${trial} row ${i}: gpu ${id}, cpu ${sampleToken(l, params[i], u)}`).toBe(true);
        if (sampleToken(l, params[i], u) === id) agree++;
      });
    }
    expect(agree).toBeGreaterThanOrEqual(params.length * 8 - 1);
  });

  it("emptying a slot returns its sequences to the base model", async () => {
    const step = { tokens: prompt, position: 0, blockTable: table(70), slot: 4 };
    await gpu.setAdapter(4, oddAdapter(16, ["k", "o", "gate", "up"], 5));
    const base = await gpu.forward([{ ...step, slot: -1 }]);
    const withOdd = await gpu.forward([step]);
    expect(relDiff(withOdd, base)).toBeGreaterThan(1e-3);
    await gpu.setAdapter(4, null);
    expect(relDiff(await gpu.forward([step]), base)).toBe(0);
  });

  it("rejects what the cpu backend rejects", async () => {
    await expect(gpu.forward([])).rejects.toThrow(RangeError);
    await expect(gpu.forward([{ tokens: [config.vocabSize], position: 0, blockTable: [0], slot: -1 }])).rejects.toThrow(
      RangeError,
    );
    await expect(gpu.forward([{ tokens: [1], position: 0, blockTable: [0], slot: 9 }])).rejects.toThrow(RangeError);
    await expect(gpu.setAdapter(5, null)).rejects.toThrow(RangeError);
    await expect(gpu.setAdapter(0, oddAdapter(17, ["q"], 1))).rejects.toThrow(/rank/);
    // The backend still works after rejected calls.
    expect((await gpu.forward([{ tokens: [1], position: 0, blockTable: [0], slot: -1 }])).length).toBe(
      config.vocabSize,
    );
  });
});

describe("webgpu backend options", () => {
  it("f32 weights stored as f16 stay within the f16 tolerance, in half the bytes", async () => {
    const f16 = await createWebGpuBackend(model.weights, { ...OPTIONS, f16: true });
    try {
      expect(f16.device).toContain("(f16 weights)");
      expect(f16.weightBytes).toBeLessThan(0.55 * (gpu as typeof f16).weightBytes);
      await f16.setAdapter(0, adapters[0]);
      for (const slot of [-1, 0]) {
        const step = { tokens: prompt, position: 0, blockTable: table(0), slot };
        expect(relDiff(await f16.forward([step]), await cpu.forward([step]))).toBeLessThanOrEqual(F16_TOL);
      }
    } finally {
      await f16.close();
    }
  });

  it("prefill through the tiled matmul kernel matches the cpu backend too", { timeout: 180_000 }, async () => {
    const b = await createWebGpuBackend(model.weights, { ...OPTIONS, matmul: "tiled" });
    try {
      expect(b.matmul).toBe("tiled");
      await b.setAdapter(1, adapters[1]);
      for (const slot of [-1, 1]) {
        const step = { tokens: prompt, position: 0, blockTable: table(0), slot };
        expect(relDiff(await b.forward([step]), await cpu.forward([step]))).toBeLessThanOrEqual(LOGIT_TOL);
      }
    } finally {
      await b.close();
    }
  });

  for (const matvec of ["splitk", "matmul"] as const) {
    it(`decode rows through the ${matvec} kernel match the cpu backend too`, async () => {
      const b = await createWebGpuBackend(model.weights, { ...OPTIONS, matvec });
      try {
        // The kernel asked for is the one that runs: split-k needs subgroups and would otherwise fall back.
        expect(b.matvec).toBe(matvec);
        await b.setAdapter(1, adapters[1]);
        const steps = [
          { tokens: prompt, position: 0, blockTable: table(0), slot: 1 },
          { tokens: prompt.slice(0, 2), position: 0, blockTable: table(6), slot: -1 },
        ];
        await b.forward(steps);
        await cpu.forward(steps);
        const decode = steps.map((s) => ({ ...s, tokens: [300], position: s.tokens.length }));
        expect(relDiff(await b.forward(decode), await cpu.forward(decode))).toBeLessThanOrEqual(LOGIT_TOL);
      } finally {
        await b.close();
      }
    });
  }

  it("close() frees the device; later calls reject", async () => {
    const b = await createWebGpuBackend(model.weights, OPTIONS);
    await b.close();
    await expect(b.forward([{ tokens: [1], position: 0, blockTable: [0], slot: -1 }])).rejects.toThrow(/closed/);
  });

  it("finds the checkout's lavapipe when started without the Vulkan environment", (t) => {
    const root = join(import.meta.dirname, "../..");
    if (!existsSync(join(root, ".cache/lavapipe/icd.json"))) t.skip();
    const env = { ...process.env };
    delete env.VK_ICD_FILENAMES;
    delete env.LD_LIBRARY_PATH;
    const script = `import { webgpuAvailable } from ${JSON.stringify(join(root, "node/engine/backend/webgpu/webgpu-backend.ts"))};
      console.log("available=" + await webgpuAvailable()); process.exit(0);`;
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      env,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(result.stdout, result.stderr).toContain("available=true");
  });
});
