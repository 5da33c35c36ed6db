#!/usr/bin/env bash
# Runs a project command on Node 22 with the WebGPU environment, after the idempotent set-up.
#   run.sh test            typecheck, the formatting check, then every vitest suite
#   run.sh tsc | hardhat | vitest ARGS...   the tool from node_modules/.bin
#   run.sh node FILE ARGS...                 a TypeScript entry point on Node 22
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
# shellcheck disable=SC1091
. .cache/webgpu.env
export PATH="$root/node_modules/.bin:$PATH" HARDHAT_DISABLE_TELEMETRY=true
cmd="$1"; shift
case "$cmd" in
  test)
    tsc --noEmit -p .
    prettier --check . >/dev/null || { echo "formatting: run npm run lint (prettier --check . lists the files)" >&2; prettier --check . >&2; exit 1; }
    exec vitest run "$@" ;;
  tsc) exec tsc --noEmit -p . "$@" ;;
  node) exec node "$@" ;;
  *) exec "$cmd" "$@" ;;
esac
