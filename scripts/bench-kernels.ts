// Kernel benchmarks of the webgpu backend (not tests): `npm run bench:kernels` prints the figures and writes
// bench/kernels.json.
//   copy       the device's buffer-to-buffer copy bandwidth, measured in the same run (bytes read + written / s)
//   matvec     the decode-shaped linear layer (M = 1), GB/s of weight bytes read, and its share of the copy bandwidth
//   matmul     the prefill linear layer, GFLOP/s
//   sgmv       shrink + expand for one LoRA target (h = 4096 in and out, rank 16, Punica's setting) against batch
//              size 1..64, with every row a distinct adapter and with all rows sharing one
//   steps      whole decode steps of the backend on the quick shape at batch 1 and 32 (and 32 over 8 adapters):
//              each kernel's device time (timestamp queries where the adapter has them), the step's wall and
//              host time (scripts/bench/step-profile.ts); `--profile-step` runs only this part.
//   variants   each kernel variant of kernel-plan.ts against the one it replaces (scripts/bench/kernel-variants.ts)
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { openDevice } from "../node/engine/backend/webgpu/device.ts";
import {
  ParamArena,
  Pipelines,
  StepEncoder,
  pad4,
  type KernelName,
  type KernelVariant,
  type Site,
} from "../node/engine/backend/webgpu/kernels.ts";
import * as op from "../node/engine/backend/webgpu/ops.ts";
import { storageBuffer, uploadMatrix, writeView } from "../node/engine/backend/webgpu/tensors.ts";
import { quantizeMatrix } from "../node/engine/formats/weight-codec.ts";
import type { WeightDType, WeightMatrix } from "../node/engine/model/weights.ts";
import { benchKernelVariants, randomData as seededData } from "./bench/kernel-variants.ts";
import { profileSteps } from "./bench/step-profile.ts";
import { scriptArgs } from "./script-args.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const values = scriptArgs(
  "Kernel benchmarks of the webgpu backend: copy bandwidth, matvec, matmul, SGMV, and a per-kernel step profile.",
  "npm run bench:kernels -- [--quick] [--profile-step] [--out FILE]",
  {
    quick: { type: "boolean", default: false, help: "smaller sizes, for a smoke run" },
    "profile-step": { type: "boolean", default: false, help: "only the per-kernel profile of whole decode steps" },
    "step-shape": { type: "string", default: "quick", help: "the benchmark shape of the step profile" },
    out: { type: "string", default: join(root, "bench", "kernels.json"), help: "where the JSON goes" },
  },
);
const quick = values.quick === true;
const outFile = values.out!;
/** Plain and profiled decode steps per case of the step profile. */
const profiledSteps = quick ? 3 : 5;

if (values["profile-step"]) {
  const steps = await profileSteps(root, values["step-shape"]!, profiledSteps, console.log);
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), steps }, null, 2) + "\n");
  console.log(`wrote ${outFile}`);
  process.exit(0);
}

const ctx = await openDevice(true);
const { device } = ctx;
const pipelines = new Pipelines(device);
console.log(
  `device: ${ctx.description}${ctx.isFallback ? " (software)" : ""}; max binding ${ctx.maxBinding} bytes; subgroups ${ctx.hasSubgroups ? ctx.maxSubgroup : "no"}; f16 ${ctx.hasF16}`,
);

const randomData = (n: number, scale = 1): Float32Array => seededData(n, scale, 12345);

/**
 * Seconds per repetition of what `encode` records: the best of `trials` submits of `reps` repetitions each (the
 * machine may be shared; the best trial is the least disturbed one).
 */
async function time(
  sites: { kernel: KernelName; variant?: KernelVariant; buffers: GPUBuffer[] }[],
  encode: (enc: StepEncoder, sites: Site[]) => void,
  reps: number,
  trials = 5,
): Promise<number> {
  const arena = new ParamArena(device);
  const made = sites.map((d, i) => arena.define(`${d.kernel}${i}`, pipelines.get(d.kernel, d.variant), d.buffers));
  arena.finish();
  const once = async (n: number) => {
    const enc = new StepEncoder(device, arena);
    for (let i = 0; i < n; i++) encode(enc, made);
    enc.submit(device.queue);
    await device.queue.onSubmittedWorkDone();
  };
  await once(1); // warm-up (pipeline compile, first touch)
  const times: number[] = [];
  for (let t = 0; t < trials; t++) {
    const start = performance.now();
    await once(reps);
    times.push((performance.now() - start) / 1000 / reps);
  }
  arena.destroy();
  return Math.min(...times);
}

const COPY_SHADER = `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * 2097152u + gid.x;
  if (i < arrayLength(&src)) { dst[i] = src[i]; }
}`;

/** Copy bandwidth, bytes read + written per second (best of 5): copyBufferToBuffer, and a vec4 copy shader. */
async function copyBandwidth(bytes: number, reps: number): Promise<{ buffer: number; shader: number }> {
  const src = storageBuffer(device, "src", bytes, randomData(bytes / 4));
  const dst = storageBuffer(device, "dst", bytes);
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module: device.createShaderModule({ code: COPY_SHADER }), entryPoint: "main" },
  });
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: src } },
      { binding: 1, resource: { buffer: dst } },
    ],
  });
  const vec4s = bytes / 16;
  const best = async (record: (enc: GPUCommandEncoder) => void) => {
    const once = async (n: number) => {
      const enc = device.createCommandEncoder();
      for (let i = 0; i < n; i++) record(enc);
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
    };
    await once(1);
    let rate = 0;
    for (let t = 0; t < 5; t++) {
      const start = performance.now();
      await once(reps);
      rate = Math.max(rate, (2 * bytes * reps) / ((performance.now() - start) / 1000) / 1e9);
    }
    return rate;
  };
  const buffer = await best((enc) => enc.copyBufferToBuffer(src, 0, dst, 0, bytes));
  const shader = await best((enc) => {
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(Math.min(32768, Math.ceil(vec4s / 64)), Math.ceil(vec4s / 2097152));
    pass.end();
  });
  src.destroy();
  dst.destroy();
  return { buffer, shader };
}

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  device: ctx.description,
  software: ctx.isFallback,
  maxStorageBindingBytes: ctx.maxBinding,
  subgroupSize: ctx.hasSubgroups ? ctx.maxSubgroup : null,
};

// 1. Copy bandwidth, measured again after the decode benchmarks (the best of both runs counts).
const copyBytes = quick ? 16 << 20 : 64 << 20;
const copyBefore = await copyBandwidth(copyBytes, quick ? 4 : 8);

// 2. Decode matvec (M = 1), and M = 4.
const matvecRows: Record<string, unknown>[] = [];
const linear = async (
  kind: "matvec" | "matvec-splitk" | "matmul",
  M: number,
  N: number,
  K: number,
  weights: WeightMatrix,
  reps: number,
) => {
  const w = uploadMatrix(device, "w", [weights], { maxBinding: ctx.maxBinding });
  const x = storageBuffer(device, "x", M * pad4(K) * 4, randomData(M * pad4(K)));
  const y = storageBuffer(device, "y", M * N * 4);
  const seconds = await time(
    w.chunks.map((c) => ({ kernel: kind, variant: { weights: c.format }, buffers: [x, c.buffer, y] })),
    (enc, sites) => {
      w.chunks.forEach((c, i) => {
        const a = { M, N: c.rows, K4: w.K4, ldx4: w.K4, ldy: N, yOff: c.rowStart, accumulate: false, sOff: c.sOff };
        if (kind === "matvec") op.matvec(enc, sites[i], a);
        else if (kind === "matvec-splitk") op.matvecSplitK(enc, sites[i], a, ctx.maxSubgroup);
        else op.matmul(enc, sites[i], a);
      });
    },
    reps,
  );
  for (const c of w.chunks) c.buffer.destroy();
  x.destroy();
  y.destroy();
  return { seconds, weightBytes: w.bytes };
};
const decodeShapes: [number, number][] = quick
  ? [[1024, 1024]]
  : [
      [2048, 2048],
      [4096, 4096],
      [11008, 4096],
    ];
// Weights in the formats a model keeps on the device (the kernels decode them): the bytes read per step differ.
const decodeFormats: WeightDType[] = ["f32", "f16", "q8_0", "q4_k", "q6_k"];
for (const [N, K] of decodeShapes) {
  for (const format of decodeFormats) {
    const weights = quantizeMatrix(randomData(N * K, 0.05), N, K, format);
    for (const kind of ctx.hasSubgroups
      ? (["matvec", "matvec-splitk", "matmul"] as const)
      : (["matvec", "matmul"] as const)) {
      for (const M of [1, 4]) {
        const { seconds, weightBytes } = await linear(kind, M, N, K, weights, N * K > 1 << 24 ? 2 : quick ? 3 : 5);
        matvecRows.push({
          kernel: kind,
          M,
          N,
          K,
          weights: format,
          microseconds: seconds * 1e6,
          gbPerSecond: weightBytes / seconds / 1e9,
        });
      }
    }
  }
}
const copyAfter = await copyBandwidth(copyBytes, quick ? 4 : 8);
const copyGBs = Math.max(copyBefore.buffer, copyAfter.buffer);
const shaderCopyGBs = Math.max(copyBefore.shader, copyAfter.shader);
console.log(
  `copy: ${copyGBs.toFixed(2)} GB/s copyBufferToBuffer, ${shaderCopyGBs.toFixed(2)} GB/s vec4 copy shader (read + write, ${copyBytes >> 20} MiB buffers)`,
);
results.copy = {
  bytes: copyBytes,
  gbPerSecond: copyGBs,
  shaderGbPerSecond: shaderCopyGBs,
  note: "bytes read + bytes written per second; best of 5 trials, before and after the decode runs",
};
for (const row of matvecRows) {
  const gbs = row.gbPerSecond as number;
  row.shareOfCopy = gbs / copyGBs;
  row.shareOfShaderCopy = gbs / shaderCopyGBs;
  console.log(
    `decode ${row.kernel} M ${row.M} ${row.N}x${row.K} ${row.weights}: ${(row.microseconds as number).toFixed(0)} us, ${gbs.toFixed(2)} GB/s of weights = ${((100 * gbs) / copyGBs).toFixed(0)}% of copy, ${((100 * gbs) / shaderCopyGBs).toFixed(0)}% of shader copy`,
  );
}
results.decode = matvecRows;

// 3. Prefill matmul.
const matmulRows: Record<string, unknown>[] = [];
const matmulShapes: [number, number, number][] = quick
  ? [[64, 512, 512]]
  : [
      [128, 1024, 1024],
      [256, 2048, 2048],
      [512, 1024, 4096],
    ];
for (const [M, N, K] of matmulShapes) {
  const weights = quantizeMatrix(randomData(N * K, 0.05), N, K, "f32");
  const { seconds } = await linear("matmul", M, N, K, weights, quick ? 2 : 3);
  const gflops = (2 * M * N * K) / seconds / 1e9;
  matmulRows.push({ M, N, K, microseconds: seconds * 1e6, gflopPerSecond: gflops });
  console.log(`matmul ${M}x${N}x${K}: ${(seconds * 1e3).toFixed(2)} ms, ${gflops.toFixed(2)} GFLOP/s`);
}
results.matmul = matmulRows;

// 4. SGMV against batch size, distinct adapters vs one shared.
const h = quick ? 1024 : 4096;
const rank = 16;
const slots = 64;
const shape = op.loraGroupShape(h, [h], rank, 0);
const aPool = storageBuffer(device, "A", slots * rank * h * 4, randomData(slots * rank * h, 0.02));
const bPool = storageBuffer(device, "B", slots * h * rank * 4, randomData(slots * h * rank, 0.02));
const ranks = storageBuffer(device, "ranks", slots * 7 * 4, new Uint32Array(slots * 7).fill(rank));
const xs = storageBuffer(device, "x", 64 * h * 4, randomData(64 * h));
const ys = storageBuffer(device, "y", 64 * h * 4);
const vs = storageBuffer(device, "v", 64 * rank * 4);
const tiles = storageBuffer(device, "tiles", 64 * 16);
const sgmvRows: Record<string, unknown>[] = [];
for (const batch of [1, 2, 4, 8, 16, 32, 64]) {
  const row: Record<string, unknown> = { batch };
  // The two modes alternate trial by trial, so that a disturbance of the machine hits both alike.
  const tables = {
    distinct: op.buildTiles(
      Array.from({ length: batch }, (_, i) => i),
      () => true,
    ),
    shared: op.buildTiles(new Array<number>(batch).fill(0), () => true),
  };
  const best = { distinct: Infinity, shared: Infinity };
  for (let trial = 0; trial < 5; trial++) {
    for (const mode of ["distinct", "shared"] as const) {
      const table = tables[mode];
      writeView(device, tiles, 0, table);
      const nTiles = table.length / 4;
      const seconds = await time(
        [
          { kernel: "sgmv-shrink", buffers: [xs, aPool, tiles, ranks, vs] },
          { kernel: "sgmv-expand", buffers: [vs, bPool, tiles, ranks, ys] },
        ],
        (enc, [shrink, expand]) => {
          const shrinkArgs = { nTiles, layer: 0, ldx4: h / 4, ldv: rank, rankStride: 7, segments: false };
          op.sgmvShrink(enc, shrink, shape, shrinkArgs);
          op.sgmvExpand(enc, expand, shape, { nTiles, layer: 0, ldv4: rank / 4, ldy: h, yOff: 0, rankStride: 7 });
        },
        quick ? 5 : 10,
        1,
      );
      best[mode] = Math.min(best[mode], seconds);
    }
  }
  row.distinctMicroseconds = best.distinct * 1e6;
  row.sharedMicroseconds = best.shared * 1e6;
  row.distinctOverShared = (row.distinctMicroseconds as number) / (row.sharedMicroseconds as number);
  sgmvRows.push(row);
  console.log(
    `sgmv batch ${String(batch).padStart(2)}: distinct ${(row.distinctMicroseconds as number).toFixed(0)} us, shared ${(row.sharedMicroseconds as number).toFixed(0)} us, ratio ${(row.distinctOverShared as number).toFixed(2)}`,
  );
}
results.sgmv = { h, rank, note: "shrink + expand of one target, h x h, microseconds per call", rows: sgmvRows };

const best = Math.max(
  ...matvecRows.filter((r) => r.M === 1 && r.weights === "f32").map((r) => r.shareOfCopy as number),
);
const bestShader = Math.max(
  ...matvecRows.filter((r) => r.M === 1 && r.weights === "f32").map((r) => r.shareOfShaderCopy as number),
);
const at32 = sgmvRows.find((r) => r.batch === 32)?.distinctOverShared as number;
results.targets = {
  decodeMatvecShareOfCopy: { best, target: 0.7, met: best >= 0.7, bestOfShaderCopy: bestShader },
  sgmv32DistinctOverShared: { value: at32, target: 1.5, met: at32 <= 1.5 },
};
console.log(
  `targets: decode matvec ${(100 * best).toFixed(0)}% of copy, ${(100 * bestShader).toFixed(0)}% of shader copy (target 70%); sgmv 32 distinct / shared ${at32.toFixed(2)} (target <= 1.5)`,
);

// 5. The kernel variants against the ones they replace. A failure is recorded, not fatal.
try {
  results.variants = await benchKernelVariants(ctx, quick, console.log);
} catch (error) {
  console.log(`kernel variants failed: ${String(error)}`);
  results.variants = { error: String(error) };
}

// 6. Whole decode steps, kernel by kernel (its own device: the backend's). A failure here is recorded, not fatal:
// the figures above are kept.
try {
  results.steps = await profileSteps(root, values["step-shape"]!, profiledSteps, console.log);
} catch (error) {
  console.log(`step profile failed: ${String(error)}`);
  results.steps = { error: String(error) };
}

mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify(results, null, 2) + "\n");
console.log(`wrote ${outFile}`);
device.destroy();
process.exit(0);
