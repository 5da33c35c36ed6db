#!/usr/bin/env bash
# Compiles the simd backend's AssemblyScript kernels (kernels/cpu/simd.ts) to node/engine/backend/simd/kernels.wasm.
# The artifact is committed, so a fresh clone needs no build; test/engine/simd-kernels.test.ts fails when it is
# not what this script makes of the current source. Options: SIMD128 + relaxed SIMD (FMA) + threads (shared memory).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:-$root/node/engine/backend/simd/kernels.wasm}")"
cd "$root/kernels/cpu" # asc resolves the entry against the working folder
"$root/node_modules/.bin/asc" simd.ts -o "$out" -O3 --noAssert --runtime stub \
  --importMemory --sharedMemory --initialMemory 1 --maximumMemory 65536 --noExportMemory \
  --enable simd,threads,relaxed-simd
