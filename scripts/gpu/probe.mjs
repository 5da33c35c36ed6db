// WebGPU probe for scripts/gpu-run.sh: asks Dawn for an adapter the way the engine does (powerPreference
// "high-performance"), prints its info, limits and features, opens a device with the features the engine
// uses, runs one small compute shader and checks the result, and names the Vulkan loader and driver that the
// process actually mapped (/proc/self/maps).
//   node probe.mjs [--out FILE] [--allow-software]
// Exit: 0 a hardware adapter works; 2 no adapter; 3 only a software adapter (without --allow-software);
//       4 device or compute test failed; 1 anything else.
import { readFileSync, writeFileSync } from "node:fs";

const args = process.argv.slice(2);
const outFile = args.includes("--out") ? args[args.indexOf("--out") + 1] : null;
const allowSoftware = args.includes("--allow-software");
const t0 = performance.now();
const ms = () => Math.round(performance.now() - t0);
const report = {
  ok: false,
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  env: {},
  steps: {},
};
for (const k of ["VK_DRIVER_FILES", "VK_ICD_FILENAMES", "LD_LIBRARY_PATH", "__EGL_VENDOR_LIBRARY_FILENAMES"])
  report.env[k] = process.env[k] ?? null;

function mapped() {
  try {
    const libs = new Set();
    for (const line of readFileSync("/proc/self/maps", "utf8").split("\n")) {
      const p = line.split(/\s+/)[5];
      if (p && /vulkan|nvidia|lvp|GLdispatch|libEGL|libGLX|dawn\.node/i.test(p)) libs.add(p);
    }
    return [...libs].sort();
  } catch {
    return [];
  }
}
function finish(code, message) {
  report.exitCode = code;
  if (message) report.message = message;
  report.mappedLibraries = mapped();
  report.totalMs = ms();
  const text = JSON.stringify(report, null, 2);
  if (outFile) writeFileSync(outFile, text + "\n");
  console.log(text);
  if (message) console.error(`probe: ${message}`);
  process.exit(code);
}

let gpu; // keep the instance referenced for the life of the process (FACTS.md: GC of it aborts Dawn)
try {
  const { create, globals } = await import("webgpu");
  Object.assign(globalThis, globals);
  report.steps.importMs = ms();
  gpu = create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  report.steps.adapterMs = ms();
  if (!adapter)
    finish(
      2,
      "requestAdapter returned null: Dawn found no Vulkan device (loader or ICD missing, or the driver refused)",
    );
  const info = {};
  for (const k of [
    "vendor",
    "architecture",
    "device",
    "description",
    "subgroupMinSize",
    "subgroupMaxSize",
    "isFallbackAdapter",
  ])
    info[k] = adapter.info[k];
  for (const k in adapter.info) if (!(k in info) && typeof adapter.info[k] !== "function") info[k] = adapter.info[k];
  report.adapter = info;
  report.features = [...adapter.features].sort();
  const limits = {};
  for (const k in adapter.limits) if (typeof adapter.limits[k] === "number") limits[k] = adapter.limits[k];
  report.limits = limits;
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`;
  report.software = info.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader/i.test(text);
  report.engineWillUse = {
    "timestamp-query": adapter.features.has("timestamp-query"),
    "shader-f16": adapter.features.has("shader-f16"),
    subgroups: adapter.features.has("subgroups") && (info.subgroupMaxSize ?? 0) > 0 && info.subgroupMaxSize <= 64,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    maxBufferSize: limits.maxBufferSize,
  };
  console.error(`probe: adapter ${text.replace(/\s+/g, " ").trim()} (software: ${report.software})`);
  if (report.software && !allowSoftware)
    finish(3, `only a software adapter answered (${text.trim()}): the NVIDIA Vulkan driver was not picked up`);

  // A device as the engine opens it (device.ts), then one compute dispatch checked on the host.
  const requiredFeatures = [];
  if (report.engineWillUse["shader-f16"]) requiredFeatures.push("shader-f16");
  if (report.engineWillUse.subgroups) requiredFeatures.push("subgroups");
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
    },
  });
  report.steps.deviceMs = ms();
  let gpuError = null;
  device.addEventListener("uncapturederror", (e) => {
    gpuError = e.error.message;
  });
  const n = 1 << 20;
  const x = new Float32Array(n).map((_, i) => i % 1000);
  const src = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const dst = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(src, 0, x);
  const module = device.createShaderModule({
    code: `
    @group(0) @binding(0) var<storage, read> a: array<f32>;
    @group(0) @binding(1) var<storage, read_write> b: array<f32>;
    @compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
      if (g.x < arrayLength(&a)) { b[g.x] = a[g.x] * 2.0 + 1.0; }
    }`,
  });
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: src } },
      { binding: 1, resource: { buffer: dst } },
    ],
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(n / 256);
  pass.end();
  enc.copyBufferToBuffer(dst, 0, read, 0, n * 4);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const y = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  let bad = 0;
  for (let i = 0; i < n; i++) if (y[i] !== x[i] * 2 + 1) bad++;
  report.steps.computeMs = ms();
  report.computeTest = { elements: n, wrong: bad, gpuError };
  device.destroy();
  if (bad !== 0 || gpuError)
    finish(4, `compute test failed: ${bad} wrong of ${n}${gpuError ? `, GPU error: ${gpuError}` : ""}`);
  report.ok = true;
  finish(0);
} catch (error) {
  finish(1, `probe threw: ${error?.stack ?? error}`);
}
