// The WGSL kernels of kernels/, their pipelines, and the parameter arena every dispatch reads its uniforms from.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { WeightDType } from "../../model/weights.ts";

const kernelDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../kernels");

export type KernelName =
  | "embed"
  | "rmsnorm"
  | "matmul"
  | "matmul-tiled"
  | "matvec"
  | "matvec-splitk"
  | "matvec-splitk-norm"
  | "rope"
  | "kv-store"
  | "attention"
  | "attention-split"
  | "attention-reduce"
  | "gated"
  | "sgmv-shrink"
  | "sgmv-expand"
  | "sgmv-shrink-segment"
  | "sgmv-expand-segment"
  | "sample"
  | "bias-add"
  | "head-rmsnorm"
  | "softcap";

/**
 * How a kernel's source is specialized (after its `//#NAME` lines are replaced by kernels/NAME.wgsl): the format
 * its weights are stored in (kernels that read a weight matrix mark the spot with a `//#weights BINDING` line,
 * where kernels/weights/<format>.wgsl goes: the binding `w` and its decoder `wload(row, k)`; f32 when not
 * given), `const NAME = value;` constants, and for halfAccumulate (kernels with an `alias stage4 = vec4<f32>;`
 * line, on a device with shader-f16) stage4 as vec4<f16>.
 */
export interface KernelVariant {
  weights?: WeightDType;
  constants?: Record<string, number>;
  halfAccumulate?: boolean;
}

const sources = new Map<string, string>();

function readKernel(file: string): string {
  let text = sources.get(file);
  if (text === undefined) {
    text = fs.readFileSync(path.join(kernelDir, file), "utf8");
    sources.set(file, text);
  }
  return text;
}

/** The WGSL text of a kernel, specialized. */
export function kernelSource(name: KernelName, variant: KernelVariant = {}): string {
  // Kernels of one family share their parameters, bindings and common code: a `//#NAME` line stands for
  // kernels/NAME.wgsl (the linear kernels' linear-io, the attention kernels' attention-core).
  let text = readKernel(`${name}.wgsl`).replace(/^\/\/#([a-z-]+)$/gm, (_, part: string) => readKernel(`${part}.wgsl`));
  const marker = /^\/\/#weights (\d+)$/m;
  const binding = marker.exec(text)?.[1];
  if (binding !== undefined) {
    const decoder = readKernel(`weights/${variant.weights ?? "f32"}.wgsl`).replace(
      "@binding(WB)",
      `@binding(${binding})`,
    );
    text = text.replace(marker, () => decoder);
  } else if (variant.weights) {
    throw new Error(`kernel ${name} reads no weight matrix (variant ${variant.weights})`);
  }
  if (variant.halfAccumulate) {
    const alias = "alias stage4 = vec4<f32>;";
    if (!text.includes(alias)) throw new Error(`kernel ${name} has no f16 variant (no ${alias})`);
    text = `enable f16;\n${text.replace(alias, "alias stage4 = vec4<f16>;")}`;
  }
  for (const [constant, value] of Object.entries(variant.constants ?? {})) {
    const pattern = new RegExp(`const ${constant}: u32 = \\d+u;`);
    if (!pattern.test(text)) throw new Error(`kernel ${name} has no constant ${constant}`);
    text = text.replace(pattern, `const ${constant}: u32 = ${value >>> 0}u;`);
  }
  return text;
}

/** Pipelines of one device, built once per (kernel, variant). */
export class Pipelines {
  readonly device: GPUDevice;
  private cache = new Map<string, GPUComputePipeline>();
  constructor(device: GPUDevice) {
    this.device = device;
  }
  get(name: KernelName, variant: KernelVariant = {}): GPUComputePipeline {
    const constants = JSON.stringify(variant.constants ?? {});
    const key = `${name}|${variant.weights ?? "f32"}|${constants}|${variant.halfAccumulate ?? false}`;
    let pipeline = this.cache.get(key);
    if (!pipeline) {
      const module = this.device.createShaderModule({ label: name, code: kernelSource(name, variant) });
      pipeline = this.device.createComputePipeline({
        label: name,
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      this.cache.set(key, pipeline);
    }
    return pipeline;
  }
}

/** Bytes between two dispatches' parameter blocks (the uniform offset alignment). */
export const PARAM_STRIDE = 256;

/**
 * One dispatch site: a pipeline, its buffers bound once, and its own block in the parameter arena. Sites are
 * made when a backend (or a test) starts; a step only writes parameters and records dispatches.
 */
export interface Site {
  readonly name: string;
  readonly pipeline: GPUComputePipeline;
  readonly slot: number;
  bindGroup: GPUBindGroup | null;
  readonly entries: GPUBuffer[];
}

/**
 * The uniform buffer that holds every site's parameters, written with one writeBuffer per submit. Sites are
 * declared first (define), then finish() allocates the buffer and the bind groups.
 */
export class ParamArena {
  readonly device: GPUDevice;
  private sites: Site[] = [];
  private buffer: GPUBuffer | null = null;
  private bytes = new ArrayBuffer(0);
  private u32 = new Uint32Array(0);
  private f32 = new Float32Array(0);
  private dirtyEnd = 0;
  constructor(device: GPUDevice) {
    this.device = device;
  }

  /** Declares a site: binding 0 is its parameter block, bindings 1.. are the buffers, in order. */
  define(name: string, pipeline: GPUComputePipeline, buffers: GPUBuffer[]): Site {
    if (this.buffer) throw new Error("ParamArena: define after finish");
    const site: Site = { name, pipeline, slot: this.sites.length, bindGroup: null, entries: buffers };
    this.sites.push(site);
    return site;
  }

  finish(): void {
    const size = Math.max(1, this.sites.length) * PARAM_STRIDE;
    this.buffer = this.device.createBuffer({
      label: "params",
      size,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.bytes = new ArrayBuffer(size);
    this.u32 = new Uint32Array(this.bytes);
    this.f32 = new Float32Array(this.bytes);
    for (const site of this.sites) {
      site.bindGroup = this.device.createBindGroup({
        label: site.name,
        layout: site.pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: this.buffer, offset: site.slot * PARAM_STRIDE, size: PARAM_STRIDE } },
          ...site.entries.map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
        ],
      });
    }
  }

  get byteLength(): number {
    return this.bytes.byteLength;
  }

  /** Writes a site's parameters: integers as u32, and the entries listed in floatAt as f32. */
  set(site: Site, values: readonly number[], floatAt: readonly number[] = []): void {
    const base = site.slot * (PARAM_STRIDE / 4);
    for (let i = 0; i < values.length; i++) this.u32[base + i] = values[i] >>> 0;
    for (const i of floatAt) this.f32[base + i] = values[i];
    this.dirtyEnd = Math.max(this.dirtyEnd, (site.slot + 1) * PARAM_STRIDE);
  }

  /** Sends the parameters written since the last upload (queue-ordered before the next submit). */
  upload(): void {
    if (!this.buffer) throw new Error("ParamArena: upload before finish");
    if (this.dirtyEnd === 0) return;
    this.device.queue.writeBuffer(this.buffer, 0, this.bytes, 0, this.dirtyEnd);
    this.dirtyEnd = 0;
  }

  destroy(): void {
    this.buffer?.destroy();
  }
}

/** Records the dispatches of one submit into one compute pass. */
export class StepEncoder {
  readonly encoder: GPUCommandEncoder;
  private pass: GPUComputePassEncoder | null;
  private arena: ParamArena;
  dispatches = 0;
  constructor(device: GPUDevice, arena: ParamArena) {
    this.arena = arena;
    this.encoder = device.createCommandEncoder();
    this.pass = this.encoder.beginComputePass();
  }

  dispatch(site: Site, params: readonly number[], floatAt: readonly number[], x: number, y = 1, z = 1): void {
    if (x === 0 || y === 0 || z === 0) return;
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    this.arena.set(site, params, floatAt);
    this.pass.setPipeline(site.pipeline);
    this.pass.setBindGroup(0, site.bindGroup!);
    this.pass.dispatchWorkgroups(x, y, z);
    this.dispatches++;
  }

  /** Ends the compute pass (copies go between passes). */
  endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.endPass();
    if (size > 0) this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
  }

  /** Uploads the parameters and submits everything recorded. */
  submit(queue: GPUQueue): void {
    this.endPass();
    this.arena.upload();
    queue.submit([this.encoder.finish()]);
  }
}

/** ceil(a / b) for positive integers. */
export function cdiv(a: number, b: number): number {
  return Math.ceil(a / b);
}

/** n rounded up to a multiple of 4 (vec4 rows). */
export function pad4(n: number): number {
  return Math.ceil(n / 4) * 4;
}
