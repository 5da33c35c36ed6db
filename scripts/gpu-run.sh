#!/usr/bin/env bash
# gpu-run.sh: the one command that runs on the device machine (the `run` tool), which has no Node and no
# network. scripts/gpu-pack.sh, run here first, writes the two ignored folders that travel as `carry`:
#     run(command="bash scripts/gpu-run.sh", carry=[".gpu-carry", ".gl"], timeout_s=540)
# Stages, each timed, each failing with one line "GPUKIT FAILED at stage '<stage>' ...: <why>":
#   env      the carried files and the tools this script needs are there         exit 10
#   node     Node 22 and the pruned node_modules unpacked to $GPUKIT_WORK         exit 11
#            (/tmp/gpukit; .gpu-carry/work if /tmp is mounted noexec)
#   loader   Vulkan loader: .gl/*.deb unpacked over / + ldconfig (device README)  exit 12
#   probe    WebGPU adapter on the NVIDIA ICD: info, limits, features (shader-f16, subgroups, timestamp-query),
#            one checked compute dispatch -> $OUT/adapter.json                   exit 13
#   parity   scripts/gpu/parity.ts: stories260K greedy 60 tokens, and every weight format (f32 .. Q6_K) on a
#            GGUF of that type, webgpu vs the cpu reference -> $OUT/parity.json   exit 14
#   bench    scripts/bench.ts --shape 1b --backend webgpu
#            -> $OUT/bench.json, $OUT/BENCHMARKS.md (the repo's, with the block)  exit 15
#   bench-q4k  scripts/bench.ts --shape 1b --weights q4_k --quick --backend webgpu
#            -> $OUT/bench-q4k.json, its block in $OUT/BENCHMARKS.md            exit 17
#   kernels  scripts/bench-kernels.ts -> $OUT/kernels.json                        exit 16
# env..probe and parity errors stop the run at once. A parity difference is a result, not a broken stage: it
# is reported and the benchmarks still run (exit 3 at the end; GPUKIT_PARITY=strict stops instead).
# bench and kernels each run under their own limit; one failing does not skip the other (exit 15/16).
# Also written: $OUT/device-run.log (everything printed), $OUT/stages.tsv (stage, status, seconds, note).
# Knobs (environment): GPUKIT_DEADLINE whole-script seconds (480); GPUKIT_WORK (/tmp/gpukit);
#   GPUKIT_STAGES ("parity bench bench-q4k kernels"; env, node, loader and probe always run, probe picks the ICD);
#   GPUKIT_BENCH_ARGS ("--shape 1b"); GPUKIT_Q4K_ARGS ("--shape 1b --weights q4_k --quick"); GPUKIT_KERNELS_ARGS ("");
#   limits in seconds: GPUKIT_PARITY_LIMIT (90) GPUKIT_BENCH_LIMIT (240) GPUKIT_Q4K_LIMIT (120)
#   GPUKIT_KERNELS_LIMIT (120), each cut to what is left of the deadline; GPUKIT_PARITY=strict;
#   rehearsal only (scripts/gpu/rehearse.sh): GPUKIT_ICD (use this ICD json, no search), GPUKIT_GL_PREFIX (unpack
#   .gl there and use LD_LIBRARY_PATH instead of /), GPUKIT_ALLOW_SOFTWARE=1 (accept lavapipe), GPUKIT_NO_XZ=1,
#   GPUKIT_NO_DPKG=1.
# Adapted from ../shared/gpu-kit (device-run.sh), which was rehearsed the same way; the project needs none of it.
set -uo pipefail

ROOT="$(pwd -P)"
KIT="$ROOT/.gpu-carry"
OUT="${OUT:-/tmp/gpu-out}"  # outside the checkout: prettier and git never see it
WORK="${GPUKIT_WORK:-/tmp/gpukit}"
DEADLINE="${GPUKIT_DEADLINE:-480}"
STAGES=" ${GPUKIT_STAGES:-parity bench bench-q4k kernels} "
mkdir -p "$OUT" "$WORK" || { echo "GPUKIT FAILED at stage 'env': cannot create OUT=$OUT or WORK=$WORK"; exit 10; }
exec > >(tee -a "$OUT/device-run.log") 2>&1
TEE_PID=$!

us() { local t="${EPOCHREALTIME:-}"; if [ -n "$t" ]; then echo "${t//[!0-9]/}"; else date +%s%6N; fi; }  # microseconds
T0="$(us)"
secs() { local d=$(( $(us) - $1 )); printf '%d.%d' $(( d / 1000000 )) $(( (d % 1000000) / 100000 )); }
left() { echo $(( DEADLINE - ($(us) - T0) / 1000000 )); }
# limit WANT: WANT seconds, or what is left of the deadline (less a 10 s margin) when that is less.
limit() { local l; l=$(( $(left) - 10 )); if [ "$l" -lt "$1" ]; then echo "$l"; else echo "$1"; fi; }

declare -A CODE=([env]=10 [node]=11 [loader]=12 [probe]=13 [parity]=14 [bench]=15 [kernels]=16 [bench-q4k]=17)
STAGE=env
ST0="$T0"
RESULT=0
NODE_OK=0
printf 'stage\tstatus\tseconds\tnote\n' > "$OUT/stages.tsv"

begin() { STAGE="$1"; ST0="$(us)"; echo; echo "=== [$(secs "$T0") s] stage $1: $2"; }
pass() {
  local d; d="$(secs "$ST0")"
  printf '%s\tok\t%s\t%s\n' "$STAGE" "$d" "${1:-}" >> "$OUT/stages.tsv"
  echo "=== stage $STAGE ok in $d s${1:+ ($1)}"
}
# fail WHY: records the failure and goes on; die WHY: records it and ends the run.
fail() {
  local d; d="$(secs "$ST0")"
  printf '%s\tFAIL\t%s\t%s\n' "$STAGE" "$d" "$1" >> "$OUT/stages.tsv"
  echo "GPUKIT FAILED at stage '$STAGE' after $d s: $1"
  if [ "$RESULT" -eq 0 ] || [ "$RESULT" -eq 3 ]; then RESULT="${CODE[$STAGE]:-1}"; fi
}
die() { fail "$1"; finish; }
# why RC LIMIT: words for a command's exit status under timeout.
why() { case "$1" in 124|137) echo "timed out after $2 s";; *) echo "exit status $1";; esac; }

summary() {
  echo
  echo "=== gpukit summary after $(secs "$T0") s (exit $RESULT)"
  column -t -s $'\t' "$OUT/stages.tsv" 2>/dev/null || cat "$OUT/stages.tsv"
  [ "$NODE_OK" = 1 ] || return 0
  node - "$OUT" <<'EOF' 2>/dev/null
const fs = require("node:fs"), path = require("node:path");
const dir = process.argv[2];
const read = (f) => { try { return JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")); } catch { return null; } };
const a = read("adapter.json"), p = read("parity.json"), b = read("bench.json"), k = read("kernels.json");
const q = read("bench-q4k.json");
if (a?.adapter) console.log(`adapter: ${a.adapter.vendor} | ${a.adapter.architecture} | ${a.adapter.device} | ${a.adapter.description} | subgroups ${a.adapter.subgroupMinSize}-${a.adapter.subgroupMaxSize} | f16 ${a.engineWillUse?.["shader-f16"]} | maxStorageBinding ${a.limits?.maxStorageBufferBindingSize} | ${a.mappedLibraries?.join(" ")}`);
if (p) console.log(`parity: ${p.ok ? "all within tolerance" : "DIFFERS"}; demo ${p.demo.ok ? "ok" : "differs"} (max rel ${p.demo.maxRelDiff}); ${p.formats.map((f) => `${f.dtype} ${f.ok ? "ok" : "DIFFERS"} ${f.maxRelDiff.toExponential(1)} ${f.deviceWeightBytes}/${f.fileTensorBytes} B`).join("; ")}`);
if (b) console.log(`bench: ${JSON.stringify(b)}`);
if (q) console.log(`bench q4_k: ${JSON.stringify(q)}`);
if (k) console.log(`kernels: copy ${k.copy?.gbPerSecond?.toFixed?.(1)} GB/s; targets ${JSON.stringify(k.targets)}`);
EOF
  return 0
}
finish() {
  summary
  exec >&- 2>&-
  wait "$TEE_PID" 2>/dev/null
  exit "$RESULT"
}

# ---------------------------------------------------------------------------------------------------------
begin env "carried files and tools"
echo "host $(uname -n), kernel $(uname -r), $(uname -m); uid $(id -u); root $ROOT; OUT $OUT; WORK $WORK; deadline $DEADLINE s"
[ "$(uname -m)" = x86_64 ] || die "the kit carries x86-64 binaries; this machine is $(uname -m)"
[ -f "$KIT/MANIFEST" ] || die "$KIT/MANIFEST missing: name .gpu-carry in carry, after running scripts/gpu-pack.sh in this checkout"
for f in node.xz node_modules.tar.xz; do
  [ -s "$KIT/$f" ] || die "$KIT/$f missing or empty (re-run scripts/gpu-pack.sh)"
done
{ [ -f scripts/bench.ts ] && [ -f scripts/gpu/parity.ts ] && [ -d kernels ] && [ -d models/stories260K ]; } \
  || die "$ROOT is not the project's checkout root (scripts/bench.ts, kernels/, models/stories260K/ expected)"
for t in tar sha256sum timeout awk; do command -v "$t" >/dev/null || die "tool '$t' missing on this machine"; done
if command -v xz >/dev/null && [ -z "${GPUKIT_NO_XZ:-}" ]; then UNXZ=xz
elif command -v python3 >/dev/null && python3 -c 'import lzma, tarfile' 2>/dev/null; then UNXZ=python3
else die "neither xz nor python3 (with lzma) is here to unpack the .xz files"; fi
echo "  $(ldd --version 2>&1 | head -1); $(bash --version | head -1)"
if command -v nvidia-smi >/dev/null; then
  timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem --format=csv,noheader 2>&1 | sed 's/^/  nvidia-smi: /'
fi
pass "unpacking with $UNXZ"

# ---------------------------------------------------------------------------------------------------------
begin node "Node and node_modules into $WORK"
manifest() { awk -v k="$1" '$1 == k { print $2 }' "$KIT/MANIFEST"; }
unxz_to() { # FILE.xz DEST
  if [ "$UNXZ" = xz ]; then xz -dc "$1" > "$2"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"), 1 << 20)' "$1" "$2"; fi
}
untar_xz() { # FILE.tar.xz DIR
  if [ "$UNXZ" = xz ]; then tar -xJf "$1" -C "$2"
  else python3 -c 'import sys, tarfile
kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2], **kw)' "$1" "$2"; fi
}
# install_into DIR: node and node_modules into DIR. 0 ok; 3 the binary cannot run from there (noexec?); else 2.
install_into() {
  local w="$1" sum
  mkdir -p "$w/bin" || { echo "cannot create $w/bin"; return 2; }
  unxz_to "$KIT/node.xz" "$w/bin/node.part" || { echo "could not unpack node.xz"; return 2; }
  sum="$(sha256sum "$w/bin/node.part" | cut -d' ' -f1)"
  [ "$sum" = "$(manifest node-sha256)" ] || { echo "node binary checksum $sum differs from the MANIFEST's (corrupt carry?)"; return 2; }
  chmod 755 "$w/bin/node.part" && mv -f "$w/bin/node.part" "$w/bin/node" || { echo "cannot install $w/bin/node"; return 2; }
  "$w/bin/node" --version >/dev/null 2>&1 || { echo "$w/bin/node does not run from $w (a noexec mount?)"; return 3; }
  rm -rf "$w/node_modules"
  untar_xz "$KIT/node_modules.tar.xz" "$w" || { echo "could not unpack node_modules.tar.xz"; return 2; }
  sum="$(sha256sum "$w/node_modules/webgpu/dist/linux-x64/dawn.node" 2>/dev/null | cut -d' ' -f1)"
  [ "$sum" = "$(manifest dawn-sha256)" ] || { echo "dawn.node missing or its checksum differs from the MANIFEST's"; return 2; }
}
msg="$(install_into "$WORK")"; rc=$?
if [ "$rc" -eq 3 ] && [ -z "${GPUKIT_WORK:-}" ]; then
  echo "$msg; trying $KIT/work instead"
  WORK="$KIT/work"
  msg="$(install_into "$WORK")"; rc=$?
fi
[ "$rc" -eq 0 ] || die "$msg"
if [ -L node_modules ] || [ ! -e node_modules ]; then
  ln -sfn "$WORK/node_modules" node_modules || die "cannot link $ROOT/node_modules"
else
  die "$ROOT/node_modules exists and is not a link: refusing to replace it (run in a clean checkout)"
fi
export PATH="$WORK/bin:$PATH"
hash -r
[ "$(command -v node)" = "$WORK/bin/node" ] || die "node on PATH is $(command -v node), not $WORK/bin/node"
version="$(node --version 2>&1)" || die "the carried node does not start: $version"
[ "$version" = "$(manifest node-version)" ] || die "node reports $version, the MANIFEST says $(manifest node-version)"
NODE_OK=1
pass "node $version, packages: $(cd "$WORK/node_modules" && ls -d @*/* [!@.]* 2>/dev/null | tr '\n' ' ')"

# ---------------------------------------------------------------------------------------------------------
begin loader "Vulkan loader from .gl"
deb_x() { # DEB DIR: dpkg -x, or Python when dpkg is missing
  if command -v dpkg >/dev/null && [ -z "${GPUKIT_NO_DPKG:-}" ]; then dpkg -x "$1" "$2"
  else python3 - "$1" "$2" <<'EOF'
import io, sys, tarfile
f = open(sys.argv[1], "rb")
assert f.read(8) == b"!<arch>\n", "not a .deb"
while True:
    h = f.read(60)
    if len(h) < 60:
        sys.exit(f"no data.tar in {sys.argv[1]}")
    name, size = h[:16].decode().strip().rstrip("/"), int(h[48:58].decode().strip())
    data = f.read(size)
    f.read(size % 2)
    if name.startswith("data.tar"):
        kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
        tarfile.open(fileobj=io.BytesIO(data)).extractall(sys.argv[2], **kw)
        break
EOF
  fi
}
has_lib() { ldconfig -p 2>/dev/null | grep -q "[[:space:]]$1 "; }
if [ -n "${GPUKIT_GL_PREFIX:-}" ]; then
  ls .gl/*.deb >/dev/null 2>&1 || die "no .gl/*.deb here: name .gl in carry"
  mkdir -p "$GPUKIT_GL_PREFIX" || die "cannot create $GPUKIT_GL_PREFIX"
  for f in .gl/*.deb; do deb_x "$f" "$GPUKIT_GL_PREFIX" || die "could not unpack $f"; done
  export LD_LIBRARY_PATH="$GPUKIT_GL_PREFIX/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  [ -e "$GPUKIT_GL_PREFIX/usr/lib/x86_64-linux-gnu/libvulkan.so.1" ] || die "libvulkan.so.1 not in the .gl debs"
  note="unpacked into $GPUKIT_GL_PREFIX, on LD_LIBRARY_PATH"
elif has_lib libvulkan.so.1 && has_lib libGLdispatch.so.0; then
  note="libvulkan.so.1 and libGLdispatch.so.0 already in the ld cache; .gl not unpacked"
else
  ls .gl/*.deb >/dev/null 2>&1 || die "no libvulkan.so.1 on this machine and no .gl/*.deb here: name .gl in carry"
  [ "$(id -u)" = 0 ] || die "not root, cannot unpack .gl over / (set GPUKIT_GL_PREFIX to unpack elsewhere)"
  for f in .gl/*.deb; do deb_x "$f" / || die "could not unpack $f over /"; done
  ldconfig || die "ldconfig failed"
  has_lib libvulkan.so.1 || die "libvulkan.so.1 still not in the ld cache after unpacking .gl"
  note=".gl unpacked over / + ldconfig"
fi
ldconfig -p 2>/dev/null | grep -E 'libvulkan\.so|libGLX_nvidia|libEGL_nvidia|libGLdispatch|libnvidia-glcore|libnvidia-gpucomp' | sed 's/^\s*/  ld cache: /'
pass "$note"

# ---------------------------------------------------------------------------------------------------------
# (always runs: it also chooses the ICD that the later stages use)
begin probe "WebGPU adapter (Dawn on Vulkan)"
mkdir -p "$WORK/mesa-cache" "$WORK/nv-cache"
export MESA_SHADER_CACHE_DIR="$WORK/mesa-cache" __GL_SHADER_DISK_CACHE_PATH="$WORK/nv-cache"
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
cands=()
if [ -n "${GPUKIT_ICD:-}" ]; then cands=("$GPUKIT_ICD")
else
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/share/vulkan/icd.d/*.json \
           /etc/vulkan/icd.d/nvidia*.json /usr/share/vulkan/icd.d/nvidia*.json; do
    [ -f "$f" ] || continue
    case " ${cands[*]-} " in *" $f "*) ;; *) cands+=("$f");; esac
  done
  cands+=("")  # last: the loader's own search
fi
allow=(); [ -n "${GPUKIT_ALLOW_SOFTWARE:-}" ] && allow=(--allow-software)
probe_with() { # ICD (or "") -> exit status of probe.mjs
  local lim; lim="$(limit 60)"; [ "$lim" -gt 0 ] || return 124
  if [ -n "$1" ]; then VK_DRIVER_FILES="$1" VK_ICD_FILENAMES="$1" timeout -k 5 "$lim" node scripts/gpu/probe.mjs --out "$OUT/adapter.json" "${allow[@]}"
  else env -u VK_DRIVER_FILES -u VK_ICD_FILENAMES timeout -k 5 "$lim" node scripts/gpu/probe.mjs --out "$OUT/adapter.json" "${allow[@]}"; fi
}
chosen="none"; rc=1
for icd in "${cands[@]}"; do
  echo "--- probe with ICD: ${icd:-(none named: the loader default search)}"
  [ -n "$icd" ] && sed 's/^/  /' "$icd"
  probe_with "$icd" > "$WORK/probe.json"; rc=$?
  if [ "$rc" -eq 2 ] && [ -d /usr/local/nvidia/lib64 ] && [[ ":${LD_LIBRARY_PATH:-}:" != *":/usr/local/nvidia/lib64:"* ]]; then
    echo "--- no adapter; again with /usr/local/nvidia/lib64 on LD_LIBRARY_PATH"
    LD_LIBRARY_PATH="/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" probe_with "$icd" > "$WORK/probe.json"; rc=$?
    [ "$rc" -eq 0 ] && export LD_LIBRARY_PATH="/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  if [ "$rc" -eq 0 ]; then chosen="${icd:-default}"; break; fi
  echo "--- probe exit $rc"
done
# the probe's JSON (also in $OUT/adapter.json), one line per key
node -e 'try { const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8")); for (const [k, v] of Object.entries(r)) console.log(`  ${k}: ${JSON.stringify(v)}`); } catch { console.log("  (no probe output)"); }' "$WORK/probe.json"
if [ "$rc" -ne 0 ]; then
  echo "--- diagnostics: Vulkan loader log (VK_LOADER_DEBUG), first candidate ICD"
  first="${cands[0]-}"
  ( [ -n "$first" ] && export VK_DRIVER_FILES="$first" VK_ICD_FILENAMES="$first"
    VK_LOADER_DEBUG=error,warn,driver timeout -k 5 30 node scripts/gpu/probe.mjs "${allow[@]}" 2>&1 >/dev/null | head -80 )
  ls -la /dev/nvidia* /dev/dri 2>&1 | head -20
  die "no usable WebGPU adapter (probe exit $rc: 2 no adapter, 3 software only, 4 compute test failed, 124 timeout); tried: ${cands[*]:-default}"
fi
if [ "$chosen" != default ]; then export VK_DRIVER_FILES="$chosen" VK_ICD_FILENAMES="$chosen"; fi
pass "ICD $chosen"

# ---------------------------------------------------------------------------------------------------------
if [[ "$STAGES" == *" parity "* ]]; then
begin parity "webgpu vs cpu: stories260K greedy 60 tokens, every weight format"
lim="$(limit "${GPUKIT_PARITY_LIMIT:-90}")"
timeout -k 5 "$lim" node scripts/gpu/parity.ts --out "$OUT/parity.json" > "$WORK/parity.out"; rc=$?
case "$rc" in
  0) pass "all formats within tolerance" ;;
  3) if [ "${GPUKIT_PARITY:-}" = strict ]; then die "webgpu differs from cpu (see parity.json)"; fi
     printf '%s\tMISMATCH\t%s\t%s\n' "$STAGE" "$(secs "$ST0")" "webgpu differs from cpu (parity.json); benchmarks still run" >> "$OUT/stages.tsv"
     echo "=== stage parity: WEBGPU DIFFERS FROM CPU (parity.json); going on to the benchmarks"
     [ "$RESULT" -eq 0 ] && RESULT=3 ;;
  *) die "parity.ts: $(why "$rc" "$lim")" ;;
esac
fi

# ---------------------------------------------------------------------------------------------------------
if [[ "$STAGES" == *" bench "* ]]; then
BENCH_ARGS="${GPUKIT_BENCH_ARGS:---shape 1b}"
begin bench "node scripts/bench.ts $BENCH_ARGS --backend webgpu"
lim="$(limit "${GPUKIT_BENCH_LIMIT:-240}")"
if [ "$lim" -le 0 ]; then fail "skipped: the deadline ($DEADLINE s) is reached"
else
  cp BENCHMARKS.md "$OUT/BENCHMARKS.md" 2>/dev/null
  # shellcheck disable=SC2086
  timeout -k 10 "$lim" node scripts/bench.ts $BENCH_ARGS --backend webgpu --out "$OUT/bench.json" --markdown "$OUT/BENCHMARKS.md"
  rc=$?
  if [ "$rc" -eq 0 ] && [ -s "$OUT/bench.json" ]; then pass "limit $lim s"; else fail "bench.ts: $(why "$rc" "$lim")"; fi
fi
fi

# ---------------------------------------------------------------------------------------------------------
if [[ "$STAGES" == *" bench-q4k "* ]]; then
Q4K_ARGS="${GPUKIT_Q4K_ARGS:---shape 1b --weights q4_k --quick}"
begin bench-q4k "node scripts/bench.ts $Q4K_ARGS --backend webgpu"
lim="$(limit "${GPUKIT_Q4K_LIMIT:-120}")"
if [ "$lim" -le 0 ]; then fail "skipped: the deadline ($DEADLINE s) is reached"
else
  [ -f "$OUT/BENCHMARKS.md" ] || cp BENCHMARKS.md "$OUT/BENCHMARKS.md" 2>/dev/null
  # shellcheck disable=SC2086
  timeout -k 10 "$lim" node scripts/bench.ts $Q4K_ARGS --backend webgpu --out "$OUT/bench-q4k.json" --markdown "$OUT/BENCHMARKS.md"
  rc=$?
  if [ "$rc" -eq 0 ] && [ -s "$OUT/bench-q4k.json" ]; then pass "limit $lim s"; else fail "bench.ts (q4_k): $(why "$rc" "$lim")"; fi
fi
fi

# ---------------------------------------------------------------------------------------------------------
if [[ "$STAGES" == *" kernels "* ]]; then
KERNELS_ARGS="${GPUKIT_KERNELS_ARGS:-}"
begin kernels "node scripts/bench-kernels.ts $KERNELS_ARGS"
lim="$(limit "${GPUKIT_KERNELS_LIMIT:-120}")"
if [ "$lim" -le 0 ]; then fail "skipped: the deadline ($DEADLINE s) is reached"
else
  # shellcheck disable=SC2086
  timeout -k 10 "$lim" node scripts/bench-kernels.ts $KERNELS_ARGS --out "$OUT/kernels.json"
  rc=$?
  if [ "$rc" -eq 0 ] && [ -s "$OUT/kernels.json" ]; then pass "limit $lim s"; else fail "bench-kernels.ts: $(why "$rc" "$lim")"; fi
fi
fi

finish
