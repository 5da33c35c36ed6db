// Where a step's device time goes, kernel by kernel. With the adapter's timestamp-query feature every dispatch of
// the step gets a compute pass of its own whose beginning and end are written into a query set; after the step the
// set is resolved and read back. Separate passes order the dispatches exactly as one pass does (a pass boundary is
// a full barrier), so the step computes the same values; it only loses the overlap a driver may find between
// neighbouring dispatches of one pass. Without the feature only the step's wall time is known.
import { LORA_GROUPS } from "./device-model.ts";
import { StepEncoder, type ParamArena, type Site } from "./kernels.ts";

/** Queries one query set may hold (Dawn's limit): two per dispatch. */
const MAX_QUERIES = 4096;

/** One dispatch of a profiled step, in the order the step ran them. */
export interface DispatchTime {
  /** The kernel (kernels/<name>.wgsl). */
  kernel: string;
  /** The dispatch site: the weight or buffer it works on, layer index included ("wqkv3.mv0", "attention1"). */
  site: string;
  /** Device time between the beginning and the end of its pass, ms; null without timestamp queries. */
  ms: number | null;
}

/** One kernel at one kind of site (every layer together), e.g. "matvec wqkv" or "sgmv-shrink q|k|v". */
export interface KernelTotal {
  name: string;
  dispatches: number;
  ms: number;
}

export interface StepProfile {
  /** "timestamps": per-dispatch device times; "wall": the adapter lacks timestamp-query (or it was not asked). */
  source: "timestamps" | "wall";
  /** Every dispatch, in order (empty for "wall": the step then runs as usual, in one pass per submit). */
  dispatches: DispatchTime[];
  /** Host time spent planning, recording and submitting the step's passes, ms. */
  hostMs: number;
  /** From the call to the results being read back, ms. */
  wallMs: number;
}

/** Hands out query pairs to the dispatches of one step and reads their times back. */
export class StepTimer {
  readonly device: GPUDevice;
  readonly dispatches: { kernel: string; site: string }[] = [];
  #querySet: GPUQuerySet;

  constructor(device: GPUDevice) {
    this.device = device;
    this.#querySet = device.createQuerySet({ type: "timestamp", count: MAX_QUERIES });
  }

  /** The timestamp writes of the next dispatch's pass. */
  next(site: Site): GPUComputePassTimestampWrites {
    const index = this.dispatches.length;
    if (2 * index + 2 > MAX_QUERIES) {
      throw new RangeError(`profile: a step of more than ${MAX_QUERIES / 2} dispatches; profile a smaller step`);
    }
    this.dispatches.push({ kernel: site.pipeline.label, site: site.name });
    return { querySet: this.#querySet, beginningOfPassWriteIndex: 2 * index, endOfPassWriteIndex: 2 * index + 1 };
  }

  /** Resolves the queries of every dispatch so far, reads them back, and frees the query set. */
  async read(): Promise<DispatchTime[]> {
    const count = 2 * this.dispatches.length;
    if (count === 0) {
      this.#querySet.destroy();
      return [];
    }
    const bytes = count * 8;
    const resolved = this.device.createBuffer({
      label: "timestamps",
      size: bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const readback = this.device.createBuffer({
      label: "timestamps readback",
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const encoder = this.device.createCommandEncoder();
    encoder.resolveQuerySet(this.#querySet, 0, count, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, readback, 0, bytes);
    this.device.queue.submit([encoder.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    const ticks = new BigUint64Array(readback.getMappedRange().slice(0));
    readback.unmap();
    readback.destroy();
    resolved.destroy();
    this.#querySet.destroy();
    // Nanoseconds; an end before its beginning (a driver whose counters are not monotonic) counts as zero.
    return this.dispatches.map((d, i) => {
      const ns = ticks[2 * i + 1] > ticks[2 * i] ? Number(ticks[2 * i + 1] - ticks[2 * i]) : 0;
      return { ...d, ms: ns / 1e6 };
    });
  }
}

/** A StepEncoder that gives every dispatch a compute pass of its own, its beginning and end timestamped. */
export class TimedStepEncoder extends StepEncoder {
  #arena: ParamArena;
  #timer: StepTimer;

  constructor(device: GPUDevice, arena: ParamArena, timer: StepTimer) {
    super(device, arena);
    this.endPass(); // the base class opened a pass; every dispatch here opens its own
    this.#arena = arena;
    this.#timer = timer;
  }

  override dispatch(site: Site, params: readonly number[], floatAt: readonly number[], x: number, y = 1, z = 1): void {
    if (x === 0 || y === 0 || z === 0) return;
    this.#arena.set(site, params, floatAt);
    const pass = this.encoder.beginComputePass({ label: site.name, timestampWrites: this.#timer.next(site) });
    pass.setPipeline(site.pipeline);
    pass.setBindGroup(0, site.bindGroup!);
    pass.dispatchWorkgroups(x, y, z);
    pass.end();
    this.dispatches++;
  }
}

/**
 * The dispatches summed by kernel and kind of site over layers and weight chunks ("wqkv3.mv0" and "wqkv0.mv1"
 * are both "matvec wqkv"; the LoRA groups are named by their targets), in the order each first ran.
 */
export function kernelTotals(dispatches: readonly DispatchTime[]): KernelTotal[] {
  const totals = new Map<string, KernelTotal>();
  for (const d of dispatches) {
    const name = `${d.kernel} ${siteKind(d.site)}`;
    const total = totals.get(name) ?? { name, dispatches: 0, ms: 0 };
    total.dispatches++;
    total.ms += d.ms ?? 0;
    totals.set(name, total);
  }
  return [...totals.values()];
}

/** A site's name without its layer index and weight chunk: "wqkv3.mv0" -> "wqkv", "shrink2.1" -> "o". */
function siteKind(site: string): string {
  const lora = /^(?:shrink|expand)\d+\.(\d+)$/.exec(site);
  if (lora) return LORA_GROUPS[Number(lora[1])].join("|");
  return site.replace(/^([A-Za-z]+)\d+/, "$1").replace(/\.m[mv]\d+$/, "");
}
