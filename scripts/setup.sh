#!/usr/bin/env bash
# Brings this checkout to a working state, idempotently: Node 22 with the locked dependencies,
# and a WebGPU adapter (the Mesa software Vulkan driver, lavapipe, when the machine has no GPU).
# The second run costs a hash and two file checks. Everything lands inside the checkout (.cache/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p .cache
exec 9>.cache/setup.lock
flock 9

NODE_VERSION=22.23.3
say() { printf '[setup] %s\n' "$*" >&2; }

# 1. Dependencies, installed by npm running on Node 22 (on Node 20 npm silently skips Hardhat's simulator).
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -x node_modules/.bin/node ] || [ "$(cat .cache/deps.stamp 2>/dev/null)" != "$lock_sum" ]; then
  say "installing dependencies with Node $NODE_VERSION (npm ci)"
  npx -y -p "node@$NODE_VERSION" -- npm ci --no-audit --no-fund >&2
  echo "$lock_sum" > .cache/deps.stamp
fi

# 2. WebGPU: probe once; without an adapter, fetch lavapipe from Debian bookworm-backports.
if [ ! -f .cache/webgpu.env ]; then
  if node_modules/.bin/node scripts/webgpu-probe.ts >/dev/null 2>&1; then
    say "WebGPU adapter found on this machine"
    : > .cache/webgpu.env
  else
    bash scripts/fetch-lavapipe.sh "$root/.cache/lavapipe"
    printf 'export LD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\nexport VK_ICD_FILENAMES="%s"\nexport MESA_SHADER_CACHE_DIR="%s"\n' \
      "$root/.cache/lavapipe/lib" "$root/.cache/lavapipe/icd.json" "$root/.cache/lavapipe/shader-cache" > .cache/webgpu.env.tmp
    # shellcheck disable=SC1091
    if ( . .cache/webgpu.env.tmp && node_modules/.bin/node scripts/webgpu-probe.ts >&2 ); then
      mv .cache/webgpu.env.tmp .cache/webgpu.env
    else
      say "lavapipe was fetched but WebGPU still finds no adapter; the webgpu backend will be unavailable"
      rm -f .cache/webgpu.env.tmp
      exit 1
    fi
  fi
fi
