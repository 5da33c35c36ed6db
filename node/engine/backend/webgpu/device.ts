// WebGPU device setup: the Dawn instance (kept alive for the whole process), the software Vulkan fallback,
// and one device per backend with the limits the kernels need.
import os from "node:os";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");

/**
 * The object create() returns. It must stay referenced for the life of the process: if it is collected while a
 * device lives, Dawn aborts at random (FACTS.md). Module scope holds it; nothing ever clears it.
 */
let gpuInstance: GPU | null = null;
let vulkanNote = "";

/**
 * When the process was started without the Vulkan environment of scripts/run.sh (VK_ICD_FILENAMES unset) and
 * the checkout holds the lavapipe driver that scripts/setup.sh fetched, point the Vulkan loader at it from
 * here: set VK_ICD_FILENAMES and load the checkout's libvulkan.so.1 globally before Dawn looks for one.
 */
function useBundledLavapipe(): void {
  if (process.platform !== "linux" || process.env.VK_ICD_FILENAMES) return;
  const dir = path.join(repoRoot, ".cache", "lavapipe");
  const icd = path.join(dir, "icd.json");
  const loader = path.join(dir, "lib", "libvulkan.so.1");
  if (!fs.existsSync(icd) || !fs.existsSync(loader)) return;
  process.env.VK_ICD_FILENAMES = icd;
  process.env.MESA_SHADER_CACHE_DIR ??= path.join(dir, "shader-cache");
  const flags = os.constants.dlopen as Record<string, number>;
  // Node does not export RTLD_NODELETE; glibc's value is 0x1000.
  const nodelete = flags.RTLD_NODELETE ?? 0x1000;
  try {
    // libvulkan is no Node addon: dlopen succeeds, then Node complains that it did not self-register. With
    // RTLD_NODELETE the library stays loaded, and RTLD_GLOBAL lets Dawn's dlopen("libvulkan.so.1") find it.
    process.dlopen({ exports: {} } as NodeJS.Module, loader, flags.RTLD_NOW | flags.RTLD_GLOBAL | nodelete);
  } catch (error) {
    if (!/self-register|did not self/i.test(String(error))) {
      vulkanNote = `could not load ${loader}: ${String(error)}`;
      return;
    }
  }
  vulkanNote = `using lavapipe from ${dir}`;
}

let gpuPromise: Promise<GPU> | null = null;

/**
 * The process-wide Dawn instance, created on first use. The webgpu package (dawn.node) is imported only then,
 * so that the cpu backend runs even where Dawn cannot load.
 */
export function gpu(): Promise<GPU> {
  gpuPromise ??= (async () => {
    useBundledLavapipe();
    const { create, globals } = await import("webgpu");
    Object.assign(globalThis, globals);
    // Dawn rounds timestamp queries down to 2^16 ns unless told not to: a GPU's kernels take microseconds, so the
    // step profile (step-profile.ts) would read zeros. The toggle touches nothing else.
    gpuInstance = create(["disable-dawn-features=timestamp_quantization"]);
    return gpuInstance;
  })();
  return gpuPromise;
}

/** How the Vulkan driver was found, for diagnostics ("" when the environment already named one). */
export function vulkanSetupNote(): string {
  return vulkanNote;
}

/** A fresh adapter (each device needs its own: Dawn marks an adapter consumed once a device is made), or null. */
export async function findAdapter(): Promise<GPUAdapter | null> {
  try {
    return await (await gpu()).requestAdapter({ powerPreference: "high-performance" });
  } catch {
    return null;
  }
}

let availability: Promise<boolean> | null = null;

/** True when a WebGPU adapter exists (a GPU, or the software driver). Probed once per process; never throws. */
export function webgpuAvailable(): Promise<boolean> {
  availability ??= findAdapter().then(
    (adapter) => adapter !== null,
    () => false,
  );
  return availability;
}

/** A device, its adapter's description, and the limits and features the backend works with. */
export interface GpuContext {
  device: GPUDevice;
  adapter: GPUAdapter;
  /** "vendor description" of the adapter, e.g. "mesa llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)". */
  description: string;
  /** Largest storage binding (bytes) the device allows: tensors above it are split. */
  maxBinding: number;
  hasF16: boolean;
  /** True on CPU-emulated adapters (lavapipe, SwiftShader): tuning differs. */
  isFallback: boolean;
  /** The subgroups feature is enabled (matvec.wgsl needs it); maxSubgroup is the largest subgroup size. */
  hasSubgroups: boolean;
  maxSubgroup: number;
  /** The timestamp-query feature is enabled: step-profile.ts can time each dispatch on the device. */
  hasTimestamps: boolean;
}

/** CPU-emulated adapters (llvmpipe/lavapipe, SwiftShader): kernels are tuned differently, and a CPU backend wins. */
export function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`;
  return info.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader/i.test(text);
}

/** Opens a device with the adapter's maximum storage limits. Throws when there is no adapter. */
export async function openDevice(wantF16 = false): Promise<GpuContext> {
  const adapter = await findAdapter();
  if (!adapter)
    throw new Error("WebGPU: no adapter found (no GPU and no software Vulkan driver; run scripts/setup.sh)");
  const lim = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
    maxBufferSize: lim.maxBufferSize,
    maxStorageBuffersPerShaderStage: Math.min(lim.maxStorageBuffersPerShaderStage, 10),
    maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: Math.min(lim.maxComputeInvocationsPerWorkgroup, 256),
    maxComputeWorkgroupSizeX: Math.min(lim.maxComputeWorkgroupSizeX, 256),
    maxComputeWorkgroupsPerDimension: lim.maxComputeWorkgroupsPerDimension,
  };
  const hasF16 = adapter.features.has("shader-f16");
  const requiredFeatures: GPUFeatureName[] = [];
  if (wantF16 && hasF16) requiredFeatures.push("shader-f16");
  const info = adapter.info as GPUAdapterInfo & { subgroupMaxSize?: number; isFallbackAdapter?: boolean };
  const maxSubgroup = info.subgroupMaxSize ?? 0;
  const hasSubgroups = adapter.features.has("subgroups") && maxSubgroup > 0 && maxSubgroup <= 64;
  if (hasSubgroups) requiredFeatures.push("subgroups" as GPUFeatureName);
  // Costs nothing until a query set is written: the profiler (step-profile.ts) needs it on the device.
  const hasTimestamps = adapter.features.has("timestamp-query");
  if (hasTimestamps) requiredFeatures.push("timestamp-query");
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  device.addEventListener("uncapturederror", (event) => {
    console.error(`WebGPU error: ${(event as GPUUncapturedErrorEvent).error.message}`);
  });
  const name = info.description || [info.architecture, info.device].filter(Boolean).join(" ") || "unknown adapter";
  const description = `${info.vendor ? info.vendor + " " : ""}${name}`.replace(/\s+/g, " ").trim();
  const maxBinding = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  const isFallback = isSoftwareAdapter(adapter);
  return {
    device,
    adapter,
    description,
    maxBinding,
    hasF16: wantF16 && hasF16,
    isFallback,
    hasSubgroups,
    maxSubgroup,
    hasTimestamps,
  };
}
