#!/usr/bin/env bash
# rehearse.sh: proves, on this machine, that what gpu-pack.sh packs holds everything the device needs.
#     bash scripts/gpu/rehearse.sh [CHECKOUT] [VAR=VALUE ...]
# CHECKOUT (default: the current git checkout) must hold .gpu-carry/ and .gl/ from scripts/gpu-pack.sh, and
# .cache/lavapipe/ from scripts/setup.sh. It makes a clean folder as the device would see it: a fresh
# `git clone` of CHECKOUT (no node_modules, no .cache) plus only the two carried folders, then runs
# scripts/gpu-run.sh there under `env -i`, with
#   - a PATH of links to /usr/bin and /usr/sbin without node, npm, npx or corepack;
#   - lavapipe in place of the NVIDIA driver: libvulkan_lvp.so and libdrm.so.2 copied into a folder of their
#     own with an ICD json (GPUKIT_ICD), and NO libvulkan.so.1 there: the loader has to come from .gl/,
#     unpacked into a prefix (GPUKIT_GL_PREFIX) instead of over /;
#   - GPUKIT_ALLOW_SOFTWARE=1, GPUKIT_BENCH_ARGS="--shape quick", GPUKIT_Q4K_ARGS="--shape quick --weights q4_k
#     --quick", GPUKIT_KERNELS_ARGS=--quick (the 1b shape takes minutes a step on lavapipe).
# Extra VAR=VALUE arguments go into that environment (e.g. GPUKIT_NO_XZ=1 GPUKIT_STAGES=parity).
# GPUKIT_REHEARSE_ROOTFS=1 (needs root, unshare and overlayfs) rehearses the device's own path instead: in a
# private mount namespace with overlays on /usr and /etc (nothing reaches the real system), lavapipe's ICD is
# written to the NVIDIA path /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json, and gpu-run.sh runs with
# neither GPUKIT_ICD nor GPUKIT_GL_PREFIX: it unpacks .gl over / + ldconfig and finds the ICD by itself.
# Everything lands in $GPUKIT_REHEARSE_DIR (default /tmp/gpukit-rehearse), removed and made again each run;
# $GPUKIT_REHEARSE_DIR/out is what $OUT would bring back. The clone is of the last commit: commit first.
# Adapted from ../shared/gpu-kit/rehearse.sh.
set -euo pipefail
SRC="$(git -C "${1:-.}" rev-parse --show-toplevel)"
[ $# -gt 0 ] && shift
R="${GPUKIT_REHEARSE_DIR:-/tmp/gpukit-rehearse}"
LVP="$SRC/.cache/lavapipe"
for f in "$SRC/.gpu-carry/MANIFEST" "$SRC/.gl" "$LVP/lib/libvulkan_lvp.so"; do
  [ -e "$f" ] || { echo "rehearse: $f missing (run scripts/gpu-pack.sh, and scripts/setup.sh for lavapipe)" >&2; exit 1; }
done
rm -rf "$R"
mkdir -p "$R/sysbin" "$R/home" "$R/out" "$R/lvp"
git clone -q "$SRC" "$R/repo"
cp -a "$SRC/.gpu-carry" "$SRC/.gl" "$R/repo/"
for d in /usr/local/sbin /usr/sbin /usr/bin; do
  for f in "$d"/*; do
    b="${f##*/}"
    case "$b" in node|nodejs|npm|npx|corepack) continue ;; esac
    [ -e "$R/sysbin/$b" ] || ln -s "$f" "$R/sysbin/$b"
  done
done
cp "$LVP/lib/libvulkan_lvp.so" "$LVP/lib/libdrm.so.2" "$R/lvp/"
printf '{ "file_format_version": "1.0.0", "ICD": { "library_path": "%s", "api_version": "1.3.0" } }\n' "$R/lvp/libvulkan_lvp.so" > "$R/lvp/icd.json"
echo "rehearse: clean checkout $R/repo ($(du -sh --exclude=.git "$R/repo" | cut -f1) without .git), PATH=$R/sysbin (no node), lavapipe ICD $R/lvp/icd.json"
cd "$R/repo"
set +e
if [ -z "${GPUKIT_REHEARSE_ROOTFS:-}" ]; then
  env -i HOME="$R/home" PATH="$R/sysbin" OUT="$R/out" LD_LIBRARY_PATH="$R/lvp" \
    GPUKIT_WORK="$R/work" GPUKIT_GL_PREFIX="$R/glroot" GPUKIT_ICD="$R/lvp/icd.json" GPUKIT_ALLOW_SOFTWARE=1 \
    GPUKIT_BENCH_ARGS="--shape quick" GPUKIT_Q4K_ARGS="--shape quick --weights q4_k --quick" GPUKIT_KERNELS_ARGS=--quick \
    "$@" /bin/bash scripts/gpu-run.sh
  rc=$?
else
  mkdir -p "$R/ov/usr/up" "$R/ov/usr/work" "$R/ov/etc/up" "$R/ov/etc/work"
  unshare -m --propagation private /bin/bash -c '
    set -e
    R="$1"; shift
    mount -t overlay overlay -o "lowerdir=/usr,upperdir=$R/ov/usr/up,workdir=$R/ov/usr/work" /usr
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$R/ov/etc/up,workdir=$R/ov/etc/work" /etc
    mkdir -p /usr/local/nvidia/share/vulkan/icd.d
    cp "$R/lvp/icd.json" /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    echo "rehearse: overlays on /usr and /etc; lavapipe ICD at /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json"
    exec env -i HOME="$R/home" PATH="$R/sysbin" OUT="$R/out" LD_LIBRARY_PATH="$R/lvp" \
      GPUKIT_WORK="$R/work" GPUKIT_ALLOW_SOFTWARE=1 GPUKIT_BENCH_ARGS="--shape quick" GPUKIT_KERNELS_ARGS=--quick \
      GPUKIT_Q4K_ARGS="--shape quick --weights q4_k --quick" \
      "$@" /bin/bash scripts/gpu-run.sh' rehearse "$R" "$@"
  rc=$?
fi
echo "rehearse: gpu-run.sh exit $rc; files for \$OUT: $(cd "$R/out" && ls | tr '\n' ' ')"
exit "$rc"
