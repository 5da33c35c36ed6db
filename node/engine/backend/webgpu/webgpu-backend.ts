// The WebGPU backend: the LLaMA forward pass and segmented LoRA (SGMV) in the WGSL kernels of kernels/.
//
// One step = one command buffer (per pass, see below) holding every dispatch; parameters live in one uniform
// arena uploaded with a single writeBuffer; pipelines and bind groups are made once at creation. Nothing is read
// back inside a step: forward() reads back the last rows' logits, sample() only the token ids.
//
// Layout on the device (all f32 unless the f16 option stores the large weights as f16):
//   weights   q|k|v fused [dim + 2 kvDim, dim], o [dim, dim], gate|up fused [2 hidden, dim], down [dim, hidden],
//             embedding and classifier [vocab, dim] (one buffer when tied); rows padded to 4 columns and split
//             into row chunks under the storage binding limit (lavapipe: 128 MiB).
//   KV pool   per layer K and V [numBlocks, blockSize, kvDim], the cpu backend's paging.
//   adapters  per layer and target group (q|k|v, o, gate|up, down): A [slots, targets * rs, in], B [slots, out, rs]
//             with rs = maxRank rounded up to 4, and a rank table [slots, layers, 7].
// A step is processed in passes of at most maxRows rows (the activation buffers' capacity); a long prefill
// spans several passes, each its own submit, which is exact since a later row only reads earlier rows' K/V.
import type { LoraAdapter } from "../../adapter/lora.ts";
import { LINEAR_TARGETS, projectionShape, type LinearTarget } from "../../model/config.ts";
import type { ModelWeights } from "../../model/weights.ts";
import type { Backend, BackendOptions, SamplingParams, SequenceStep } from "../backend.ts";
import { checkAdapterFits, checkSteps } from "../checks.ts";
import { openDevice, webgpuAvailable as probe, type GpuContext } from "./device.ts";
import { pad4, ParamArena, Pipelines, StepEncoder, type Site } from "./kernels.ts";
import * as op from "./ops.ts";
import { storageBuffer, uploadMatrix, writeView, type DeviceMatrix } from "./tensors.ts";

export interface WebGpuBackendOptions extends BackendOptions {
  /** Store the large weights as f16 (needs shader-f16; falls back to f32, saying so in `device`, without it). */
  f16?: boolean;
  /** Rows per pass (activation capacity); default 256, lowered to fit the binding limit. */
  maxRowsPerPass?: number;
  /**
   * The kernel for steps of at most 4 rows: "portable" (matvec.wgsl), "splitk" (matvec-splitk.wgsl, needs
   * subgroups) or "matmul". Default: splitk on hardware adapters with subgroups, portable otherwise (lavapipe).
   */
  matvec?: "portable" | "splitk" | "matmul";
}

/** True when WebGPU finds an adapter (a GPU or the software Vulkan driver). Never throws. */
export async function webgpuAvailable(): Promise<boolean> {
  return probe();
}

/** The four groups of LoRA targets that share an input, in the order a layer applies them. */
const GROUPS: readonly (readonly LinearTarget[])[] = [["q", "k", "v"], ["o"], ["gate", "up"], ["down"]];

interface LinearSites {
  matrix: DeviceMatrix;
  matmul: Site[];
  matvec: Site[] | null;
}

interface LoraGroup {
  shape: op.LoraGroupShape;
  targets: readonly LinearTarget[];
  a: GPUBuffer;
  b: GPUBuffer;
  shrink: Site;
  expand: Site;
}

interface LayerSites {
  attnNorm: Site;
  qkv: LinearSites;
  kvStore: Site;
  attention: Site;
  wo: LinearSites;
  ffnNorm: Site;
  gu: LinearSites;
  down: LinearSites;
  lora: LoraGroup[] | null;
}

/** A row of a step, in processing order. */
interface Row {
  token: number;
  position: number;
  seq: number;
  last: boolean;
}

/**
 * Creates the backend on the first WebGPU adapter: uploads the weights, allocates the KV pool and the adapter
 * slots, builds every pipeline. Throws (and frees the device) when there is no adapter or a buffer cannot fit.
 */
export async function createWebGpuBackend(weights: ModelWeights, options: WebGpuBackendOptions): Promise<Backend> {
  for (const key of ["numBlocks", "blockSize"] as const) {
    if (!Number.isInteger(options[key]) || options[key] <= 0) throw new RangeError(`${key} must be a positive integer, got ${options[key]}`);
  }
  for (const key of ["adapterSlots", "maxRank"] as const) {
    if (!Number.isInteger(options[key]) || options[key] < 0) throw new RangeError(`${key} must be a non-negative integer, got ${options[key]}`);
  }
  const ctx: GpuContext = await openDevice(Boolean(options.f16));
  try {
    return await build(weights, options, ctx);
  } catch (error) {
    ctx.device.destroy();
    throw error;
  }
}

async function build(weights: ModelWeights, options: WebGpuBackendOptions, ctx: GpuContext): Promise<Backend> {
  const config = weights.config;
  const { dim, hiddenDim: hidden, nLayers, nHeads, nKvHeads, headDim, vocabSize: vocab } = config;
  const kvDim = nKvHeads * headDim;
  const { device, maxBinding } = ctx;
  device.pushErrorScope("validation");
  device.pushErrorScope("out-of-memory");
  const f16 = ctx.hasF16;
  let matvecKind = options.matvec ?? (ctx.hasSubgroups && !ctx.isFallback ? "splitk" : "portable");
  if (matvecKind === "splitk" && !ctx.hasSubgroups) matvecKind = "portable";
  const pipelines = new Pipelines(device);
  const arena = new ParamArena(device);
  let memoryBytes = 0;
  const allBuffers: GPUBuffer[] = [];
  const buffer = (label: string, bytes: number, data?: ArrayBufferView, usage = 0): GPUBuffer => {
    if (bytes > maxBinding) throw new RangeError(`webgpu: ${label} needs ${bytes} bytes in one binding, the device allows ${maxBinding}`);
    const b = storageBuffer(device, label, bytes, data, usage);
    memoryBytes += b.size;
    allBuffers.push(b);
    return b;
  };

  // Widths: vec4-read activations have rows padded to 4.
  const dimP = pad4(dim);
  const hidP = pad4(hidden);
  const qkvN = dim + 2 * kvDim;
  const guN = 2 * hidden;
  const rs = pad4(Math.max(0, options.maxRank));
  const loraOn = options.adapterSlots > 0 && options.maxRank > 0;
  const vLd = Math.max(4, 3 * rs);
  const widest = Math.max(dimP, qkvN, guN, hidP, vLd);
  const maxRows = Math.max(1, Math.min(options.maxRowsPerPass ?? 256, Math.floor(maxBinding / (4 * widest))));
  const maxLast = Math.max(1, Math.min(maxRows, Math.floor(maxBinding / (4 * vocab))));
  const blocksPerSeq = Math.ceil(config.maxSeqLen / options.blockSize);

  // Weights.
  const upload = (label: string, parts: Float32Array[], cols: number): DeviceMatrix => {
    const m = uploadMatrix(device, label, parts, cols, f16, maxBinding);
    memoryBytes += m.chunks.reduce((n, c) => n + c.buffer.size, 0);
    for (const c of m.chunks) allBuffers.push(c.buffer);
    return m;
  };
  const embedding = upload("embedding", [weights.tokenEmbedding], dim);
  const classifier = weights.classifier === weights.tokenEmbedding ? embedding : upload("classifier", [weights.classifier], dim);
  const finalNorm = buffer("finalNorm", dim * 4, weights.finalNorm);

  // Activations and step tables.
  const x = buffer("x", maxRows * dimP * 4);
  const h = buffer("h", maxRows * dimP * 4);
  const qkv = buffer("qkv", maxRows * qkvN * 4);
  const att = buffer("att", maxRows * dimP * 4);
  const gu = buffer("gu", maxRows * guN * 4);
  const act = buffer("act", maxRows * hidP * 4);
  const v = buffer("v", maxRows * vLd * 4);
  const last = buffer("last", maxLast * dimP * 4);
  const logits = buffer("logits", maxLast * vocab * 4);
  const ids = buffer("ids", maxLast * 4);
  const tokensBuf = buffer("tokens", maxRows * 4);
  const positionsBuf = buffer("positions", maxRows * 4);
  const kvSlotsBuf = buffer("kvSlots", maxRows * 4);
  const tablesBuf = buffer("tables", maxRows * 4);
  const blocksBuf = buffer("blocks", maxRows * blocksPerSeq * 4);
  const tilesBuf = buffer("tiles", maxRows * 16);
  const lastRowsBuf = buffer("lastRows", maxLast * 4);
  const sampleBuf = buffer("sampleParams", maxLast * 16);
  const ropeTable = new Float32Array(config.maxSeqLen * headDim);
  for (let pos = 0; pos < config.maxSeqLen; pos++) {
    for (let i = 0; i < headDim; i += 2) {
      const angle = pos * Math.pow(config.ropeTheta, -i / headDim);
      ropeTable[pos * headDim + i] = Math.cos(angle);
      ropeTable[pos * headDim + i + 1] = Math.sin(angle);
    }
  }
  const ropeBuf = buffer("rope", ropeTable.byteLength, ropeTable);
  const ranks = new Uint32Array(Math.max(1, options.adapterSlots) * nLayers * 7);
  const ranksBuf = buffer("ranks", ranks.byteLength);
  const slotFilled = new Array<boolean>(options.adapterSlots).fill(false);

  // Pipelines and sites.
  const wv = { f16 };
  const pMatmul = pipelines.get("matmul", wv);
  const pMatvec = matvecKind === "matmul" ? null : pipelines.get(matvecKind === "splitk" ? "matvec-splitk" : "matvec", wv);
  const pNorm = pipelines.get("rmsnorm");
  const linear = (label: string, matrix: DeviceMatrix, input: GPUBuffer, output: GPUBuffer): LinearSites => ({
    matrix,
    matmul: matrix.chunks.map((c, i) => arena.define(`${label}.mm${i}`, pMatmul, [input, c.buffer, output])),
    matvec: pMatvec ? matrix.chunks.map((c, i) => arena.define(`${label}.mv${i}`, pMatvec, [input, c.buffer, output])) : null,
  });
  const pEmbed = pipelines.get("embed", wv);
  const embedSites = embedding.chunks.map((c, i) => arena.define(`embed${i}`, pEmbed, [c.buffer, tokensBuf, x]));
  const ropeSite = arena.define("rope", pipelines.get("rope"), [qkv, positionsBuf, ropeBuf]);
  const swigluSite = arena.define("swiglu", pipelines.get("swiglu"), [gu, act]);
  const pKv = pipelines.get("kv-store");
  const pAttention = pipelines.get("attention", { constants: { HEAD_DIM: headDim } });
  const pShrink = pipelines.get("sgmv-shrink");
  const pExpand = pipelines.get("sgmv-expand");
  const poolBytes = options.numBlocks * options.blockSize * kvDim * 4;

  const layers: LayerSites[] = weights.layers.map((lw, l) => {
    const attnNorm = buffer(`attnNorm${l}`, dim * 4, lw.attnNorm);
    const ffnNorm = buffer(`ffnNorm${l}`, dim * 4, lw.ffnNorm);
    const kPool = buffer(`kPool${l}`, poolBytes);
    const vPool = buffer(`vPool${l}`, poolBytes);
    let lora: LoraGroup[] | null = null;
    if (loraOn) {
      const io: [GPUBuffer, GPUBuffer][] = [[h, qkv], [att, x], [h, gu], [act, x]];
      lora = GROUPS.map((targets, g) => {
        const outs = targets.map((t) => projectionShape(config, t).outDim);
        const shape = op.loraGroupShape(projectionShape(config, targets[0]).inDim, outs, rs, LINEAR_TARGETS.indexOf(targets[0]));
        const N = shape.N;
        const a = buffer(`loraA${l}.${g}`, options.adapterSlots * targets.length * rs * shape.K4 * 16);
        const b = buffer(`loraB${l}.${g}`, options.adapterSlots * N * rs * 4);
        const [input, output] = io[g];
        return {
          shape, targets, a, b,
          shrink: arena.define(`shrink${l}.${g}`, pShrink, [input, a, tilesBuf, ranksBuf, v]),
          expand: arena.define(`expand${l}.${g}`, pExpand, [v, b, tilesBuf, ranksBuf, output]),
        };
      });
    }
    return {
      attnNorm: arena.define(`attnNorm${l}`, pNorm, [x, attnNorm, lastRowsBuf, h]),
      qkv: linear(`qkv${l}`, upload(`wqkv${l}`, [lw.wq, lw.wk, lw.wv], dim), h, qkv),
      kvStore: arena.define(`kvStore${l}`, pKv, [qkv, kvSlotsBuf, kPool, vPool]),
      attention: arena.define(`attention${l}`, pAttention, [qkv, kPool, vPool, positionsBuf, tablesBuf, blocksBuf, att]),
      wo: linear(`wo${l}`, upload(`wo${l}`, [lw.wo], dim), att, x),
      ffnNorm: arena.define(`ffnNorm${l}`, pNorm, [x, ffnNorm, lastRowsBuf, h]),
      gu: linear(`gu${l}`, upload(`wgu${l}`, [lw.wGate, lw.wUp], dim), h, gu),
      down: linear(`down${l}`, upload(`wdown${l}`, [lw.wDown], hidden), act, x),
      lora,
    };
  });
  const finalNormSite = arena.define("finalNorm", pNorm, [x, finalNorm, lastRowsBuf, last]);
  const logitSites = linear("classifier", classifier, last, logits);
  // Fewer threads on CPU-emulated devices, where each workgroup barrier switches between all of them.
  const sampleSite = arena.define("sample", pipelines.get("sample", { constants: { WG: ctx.isFallback ? 64 : 256 } }), [logits, sampleBuf, ids]);
  arena.finish();
  memoryBytes += arena.byteLength;
  const oom = await device.popErrorScope();
  const invalid = await device.popErrorScope();
  if (oom || invalid) {
    throw new Error(`webgpu backend: ${(oom ?? invalid)!.message}`);
  }

  let staging: GPUBuffer | null = null;
  const stagingFor = (bytes: number): GPUBuffer => {
    if (!staging || staging.size < bytes) {
      staging?.destroy();
      staging = device.createBuffer({ label: "readback", size: Math.max(256, Math.ceil(bytes / 256) * 256), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    }
    return staging;
  };

  const runLinear = (enc: StepEncoder, sites: LinearSites, M: number, ldx: number, ldy: number, accumulate: boolean): void => {
    const { matrix } = sites;
    matrix.chunks.forEach((chunk, i) => {
      const args: op.LinearArgs = { M, N: chunk.rows, K4: matrix.K4, ldx4: ldx / 4, ldy, yOff: chunk.rowStart, accumulate };
      if (!sites.matvec || M > 4) op.matmul(enc, sites.matmul[i], args);
      else if (matvecKind === "splitk") op.matvecSplitK(enc, sites.matvec[i], args, ctx.maxSubgroup);
      else op.matvec(enc, sites.matvec[i], args);
    });
  };

  const rankStride = nLayers * 7;
  const runLora = (enc: StepEncoder, group: LoraGroup, layer: number, nTiles: number, ldx: number, ldy: number): void => {
    op.sgmvShrink(enc, group.shrink, group.shape, { nTiles, layer, ldx4: ldx / 4, ldv: vLd, rankStride });
    op.sgmvExpand(enc, group.expand, group.shape, { nTiles, layer, ldv4: vLd / 4, ldy, yOff: 0, rankStride });
  };

  /**
   * Encodes and submits every pass of a step. With sampling, each sequence's token id lands in the staging
   * buffer at its index; without, its logits row.
   */
  function run(steps: readonly SequenceStep[], sampling: { params: readonly SamplingParams[]; uniforms: Float32Array } | null): GPUBuffer {
    checkSteps(steps, config, options);
    // Rows ordered by adapter slot, so that sequences of one adapter form one segment.
    const order = steps.map((_, i) => i).sort((a, b) => steps[a].slot - steps[b].slot || a - b);
    const rows: Row[] = [];
    for (const seq of order) {
      const step = steps[seq];
      step.tokens.forEach((token, i) => rows.push({ token, position: step.position + i, seq, last: i === step.tokens.length - 1 }));
    }
    const outBytes = sampling ? 4 : vocab * 4;
    const out = stagingFor(steps.length * outBytes);

    let start = 0;
    while (start < rows.length) {
      // This pass: up to maxRows rows and maxLast sequence ends.
      let end = start;
      let ends = 0;
      while (end < rows.length && end - start < maxRows && !(rows[end].last && ends === maxLast)) {
        if (rows[end].last) ends++;
        end++;
      }
      encodePass(rows.slice(start, end), steps, sampling, out, outBytes);
      start = end;
    }
    return out;
  }

  function encodePass(rows: Row[], steps: readonly SequenceStep[], sampling: { params: readonly SamplingParams[]; uniforms: Float32Array } | null, out: GPUBuffer, outBytes: number): void {
    const T = rows.length;
    const bs = options.blockSize;
    const tokens = new Uint32Array(T);
    const positions = new Uint32Array(T);
    const kvSlots = new Uint32Array(T);
    const tables = new Uint32Array(T);
    const blocks: number[] = [];
    const tableOf = new Map<number, number>();
    const lastRows: { row: number; seq: number }[] = [];
    // Each sequence's block table, as far as this pass's rows reach.
    const reach = new Map<number, number>();
    for (const row of rows) reach.set(row.seq, Math.max(reach.get(row.seq) ?? 0, row.position));
    rows.forEach((row, r) => {
      const step = steps[row.seq];
      tokens[r] = row.token;
      positions[r] = row.position;
      kvSlots[r] = step.blockTable[Math.floor(row.position / bs)] * bs + (row.position % bs);
      let offset = tableOf.get(row.seq);
      if (offset === undefined) {
        offset = blocks.length;
        tableOf.set(row.seq, offset);
        const needed = Math.floor(reach.get(row.seq)! / bs) + 1;
        for (let i = 0; i < needed; i++) blocks.push(step.blockTable[i]);
      }
      tables[r] = offset;
      if (row.last) lastRows.push({ row: r, seq: row.seq });
    });
    // SGMV tiles: up to 4 consecutive rows of one filled slot.
    const tiles = op.buildTiles(rows.map((row) => steps[row.seq].slot), (slot) => slotFilled[slot]);
    const nTiles = tiles.length / 4;
    lastRows.sort((a, b) => a.seq - b.seq);
    const S = lastRows.length;

    const q = device.queue;
    writeView(device, tokensBuf, 0, tokens);
    writeView(device, positionsBuf, 0, positions);
    writeView(device, kvSlotsBuf, 0, kvSlots);
    writeView(device, tablesBuf, 0, tables);
    writeView(device, blocksBuf, 0, Uint32Array.from(blocks));
    if (nTiles > 0) writeView(device, tilesBuf, 0, tiles);
    if (S > 0) writeView(device, lastRowsBuf, 0, Uint32Array.from(lastRows, (l) => l.row));

    const enc = new StepEncoder(device, arena);
    embedding.chunks.forEach((chunk, i) => op.embed(enc, embedSites[i], { T, ld4: embedding.K4, rowStart: chunk.rowStart, rowCount: chunk.rows }));
    for (let l = 0; l < nLayers; l++) {
      const L = layers[l];
      const lora = nTiles > 0 ? L.lora : null;
      op.rmsnorm(enc, L.attnNorm, { R: T, dim, ldx: dimP, ldo: dimP, eps: config.normEps, gather: false });
      runLinear(enc, L.qkv, T, dimP, qkvN, false);
      if (lora) runLora(enc, lora[0], l, nTiles, dimP, qkvN);
      op.rope(enc, ropeSite, { T, ld: qkvN, heads: nHeads + nKvHeads, headDim });
      op.kvStore(enc, L.kvStore, { T, ld: qkvN, kvDim, kOff: dim, vOff: dim + kvDim });
      op.attention(enc, L.attention, { T, nHeads, nKvHeads, headDim, kvDim, ldq: qkvN, ldo: dimP, blockSize: bs });
      runLinear(enc, L.wo, T, dimP, dimP, true);
      if (lora) runLora(enc, lora[1], l, nTiles, dimP, dimP);
      op.rmsnorm(enc, L.ffnNorm, { R: T, dim, ldx: dimP, ldo: dimP, eps: config.normEps, gather: false });
      runLinear(enc, L.gu, T, dimP, guN, false);
      if (lora) runLora(enc, lora[2], l, nTiles, dimP, guN);
      op.swiglu(enc, swigluSite, { T, hidden, ldIn: guN, upOff: hidden, ldOut: hidP });
      runLinear(enc, L.down, T, hidP, dimP, true);
      if (lora) runLora(enc, lora[3], l, nTiles, hidP, dimP);
    }
    if (S > 0) {
      op.rmsnorm(enc, finalNormSite, { R: S, dim, ldx: dimP, ldo: dimP, eps: config.normEps, gather: true });
      runLinear(enc, logitSites, S, dimP, vocab, false);
      let src: GPUBuffer = logits;
      let rowBytes = vocab * 4;
      if (sampling) {
        const sp = new Float32Array(S * 4);
        const spU = new Uint32Array(sp.buffer);
        lastRows.forEach(({ seq }, j) => {
          const p = sampling.params[seq];
          sp[j * 4] = p.temperature;
          spU[j * 4 + 1] = p.topK > 0 ? Math.min(Math.floor(p.topK), vocab) : 0;
          sp[j * 4 + 2] = p.topP;
          sp[j * 4 + 3] = sampling.uniforms[seq];
        });
        writeView(device, sampleBuf, 0, sp);
        op.sample(enc, sampleSite, { S, vocab, ld: vocab });
        src = ids;
        rowBytes = 4;
      }
      // Runs of consecutive sequence indices go out in one copy each.
      for (let j = 0; j < S;) {
        let n = 1;
        while (j + n < S && lastRows[j + n].seq === lastRows[j].seq + n) n++;
        enc.copy(src, j * rowBytes, out, lastRows[j].seq * outBytes, n * rowBytes);
        j += n;
      }
    }
    enc.submit(q);
  }

  // Public operations run one at a time: they share the activation buffers.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const result = queue.then(fn);
    queue = result.catch(() => undefined);
    return result;
  };

  async function readBack(out: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    await out.mapAsync(GPUMapMode.READ, 0, bytes);
    const copy = out.getMappedRange(0, bytes).slice(0);
    out.unmap();
    return copy;
  }

  let closed = false;
  const live = (): void => {
    if (closed) throw new Error("webgpu backend is closed");
  };

  return {
    kind: "webgpu",
    device: `webgpu: ${ctx.description}${ctx.isFallback ? " (software)" : ""}${f16 ? " (f16 weights)" : options.f16 ? " (f16 unavailable: f32 weights)" : ""}`,
    config,
    options,
    get memoryBytes() {
      return memoryBytes;
    },
    setAdapter(slot: number, adapter: LoraAdapter | null) {
      return serial(async () => {
        live();
        if (!Number.isInteger(slot) || slot < 0 || slot >= options.adapterSlots) throw new RangeError(`adapter slot ${slot} outside 0..${options.adapterSlots - 1}`);
        if (adapter) checkAdapterFits(adapter, config, options);
        for (let l = 0; l < nLayers; l++) {
          for (let t = 0; t < 7; t++) ranks[slot * rankStride + l * 7 + t] = adapter?.layers[l]?.[LINEAR_TARGETS[t]]?.rank ?? 0;
          if (!adapter) continue;
          for (const group of layers[l].lora ?? []) {
            const { shape } = group;
            const outDims = group.targets.map((target) => projectionShape(config, target).outDim);
            const inDim = projectionShape(config, group.targets[0]).inDim;
            const { a, b } = op.packLoraSlot(shape, inDim, outDims, group.targets.map((target) => adapter.layers[l]?.[target]));
            writeView(device, group.a, slot * a.byteLength, a);
            writeView(device, group.b, slot * b.byteLength, b);
          }
        }
        writeView(device, ranksBuf, 0, ranks);
        slotFilled[slot] = adapter !== null;
      });
    },
    forward(steps) {
      return serial(async () => {
        live();
        const out = run(steps, null);
        return new Float32Array(await readBack(out, steps.length * vocab * 4));
      });
    },
    sample(steps, params, uniforms) {
      return serial(async () => {
        live();
        if (params.length !== steps.length || uniforms.length < steps.length) throw new RangeError(`sample: ${steps.length} sequences, ${params.length} sampling params, ${uniforms.length} draws`);
        const out = run(steps, { params, uniforms });
        return new Int32Array(await readBack(out, steps.length * 4));
      });
    },
    close() {
      return serial(async () => {
        if (closed) return;
        closed = true;
        await device.queue.onSubmittedWorkDone();
        for (const b of allBuffers) b.destroy();
        (staging as GPUBuffer | null)?.destroy();
        arena.destroy();
        device.destroy();
      });
    },
  };
}

