#!/usr/bin/env bash
# gpu-pack.sh: builds what scripts/gpu-run.sh needs on the GPU machine (no Node there, no network). Run it HERE,
# in the root of the checkout that the `run` tool sends (the one the session was started in), after
# `bash scripts/setup.sh` has installed node_modules:
#     bash scripts/gpu-pack.sh
# Writes two ignored folders (added to .git/info/exclude) and prints their sizes and the `run` call:
#   .gpu-carry/  node.xz               Node 22 from node_modules/node/bin/node (xz, x86 filter)
#                node_modules.tar.xz   only the packages that bench.ts, bench-kernels.ts, gpu/parity.ts and
#                                      gpu/probe.mjs import (traced with esbuild), linux-x64 only
#                MANIFEST              versions and sha256 sums that gpu-run.sh checks
#   .gl/         the Vulkan loader and glvnd .debs, as the device tool's README says
# The scripts themselves (gpu-run.sh, gpu/probe.mjs, gpu/parity.ts) are tracked files and travel with the
# checkout. A second run reuses node.xz and the .debs when their sources have not changed (15 s instead of 80 s).
# Needs: xz, git, the project's node_modules (node, webgpu, esbuild); network only when .gl/ is missing.
# Adapted from ../shared/gpu-kit/pack.sh.
set -euo pipefail

ROOT="$(git rev-parse --show-toplevel)"
cd "$ROOT"
CARRY=.gpu-carry
NODE=node_modules/node/bin/node
DAWN=node_modules/webgpu/dist/linux-x64/dawn.node
ESBUILD=node_modules/.bin/esbuild
ENTRIES=(scripts/bench.ts scripts/bench-kernels.ts scripts/gpu/parity.ts scripts/gpu/probe.mjs)
DEBS=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
LIMIT_MIB=60   # what travels, checkout included; the tool's limit is 64 MiB
say() { printf '[pack %3ds] %s\n' "$SECONDS" "$*" >&2; }
fail() { printf '[pack] FAILED: %s\n' "$*" >&2; exit 1; }

# 1. What the kit is made of must be here.
for f in "$NODE" "$DAWN" "$ESBUILD" "${ENTRIES[@]}" scripts/gpu-run.sh; do
  [ -e "$f" ] || fail "$f missing (run scripts/setup.sh first; run gpu-pack.sh in the project's checkout root)"
done
command -v xz >/dev/null || fail "xz missing"
NODE_VERSION="$("$NODE" --version)"
case "$NODE_VERSION" in v22.*) ;; *) fail "$NODE is $NODE_VERSION; the project runs on Node 22" ;; esac
[ "$(uname -m)" = x86_64 ] || fail "this machine is $(uname -m): the device needs the x86-64 Node and dawn.node"

# 2. Both folders ignored, so that they travel only through `carry`.
exclude="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$exclude")" "$CARRY" .gl
for p in "$CARRY" .gl; do
  if ! git check-ignore -q "$p/probe"; then echo "/$p/" >> "$exclude"; say "added /$p/ to $exclude"; fi
done
rm -f "$CARRY/device-run.sh" "$CARRY/probe.mjs" "$CARRY/parity.mjs"  # the shared kit's layout; these are tracked now

tmp="$(mktemp -d /tmp/gpukit-pack.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

# 3. The packages the run-time code imports: esbuild's module graph of the three entry points and the probe.
#    (Bundling itself is not used: device.ts and kernels.ts find dawn.node and kernels/*.wgsl relative to
#    their own files, which a bundle would move.) webgpu loads dawn.node through a computed require(), so
#    .node files are left out of the graph and dawn.node is added with the webgpu package below.
say "tracing imports from ${ENTRIES[*]}"
"$ESBUILD" "${ENTRIES[@]}" --bundle --platform=node --format=esm --target=node22 \
  --loader:.node=empty --outdir="$tmp/trace" --metafile="$tmp/meta.json" --log-level=error \
  || fail "esbuild could not resolve every import (see above)"
mapfile -t PKGS < <("$NODE" -e '
  const meta = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
  const pkgs = new Set();
  for (const f of Object.keys(meta.inputs)) {
    const m = f.match(/^(.*?node_modules\/(?:@[^/]+\/)?[^/]+)/);
    if (m) pkgs.add(m[1]);
  }
  console.log([...pkgs].sort().join("\n"));' "$tmp/meta.json")
[ "${#PKGS[@]}" -gt 0 ] || fail "the trace found no package at all"
printf '%s\n' "${PKGS[@]}" | grep -qx node_modules/webgpu || fail "the trace does not reach the webgpu package"
say "packages: ${PKGS[*]}"

# 4. The pruned node_modules: each traced package whole, less other platforms' binaries, types, maps, docs.
for p in "${PKGS[@]}"; do
  [ -f "$p/package.json" ] || fail "$p/package.json missing"
  mkdir -p "$tmp/nm/$(dirname "$p")"
  cp -a "$p" "$tmp/nm/$p"
done
find "$tmp/nm/node_modules" -depth -type d \( -name 'darwin-*' -o -name 'win32-*' -o -name 'linux-arm*' -o -name 'linux-ia32' \
  -o -name 'android-*' -o -name 'freebsd-*' \) -exec rm -rf {} +
find "$tmp/nm/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \
  -o -iname 'README*' -o -iname 'CHANGELOG*' \) -delete
[ -f "$tmp/nm/$DAWN" ] || fail "dawn.node did not make it into the pruned node_modules"
printf '%s\n' "${PKGS[@]}" > "$tmp/nm/node_modules/.gpukit"
say "compressing node_modules ($(du -sh "$tmp/nm/node_modules" | cut -f1))"
tar -C "$tmp/nm" --owner=0 --group=0 --numeric-owner -cf - node_modules | xz --x86 --lzma2=preset=9 -c > "$tmp/nm.tar.xz"
mv -f "$tmp/nm.tar.xz" "$CARRY/node_modules.tar.xz"

# 5. Node, xz with the x86 filter (125 MB -> 28 MB; about 60 s on one core). Reused when unchanged.
NODE_SHA="$(sha256sum "$NODE" | cut -d' ' -f1)"
if [ -s "$CARRY/node.xz" ] && [ -f "$CARRY/MANIFEST" ] && grep -qx "node-sha256 $NODE_SHA" "$CARRY/MANIFEST"; then
  say "node.xz is up to date"
else
  say "compressing Node $NODE_VERSION (about a minute)"
  xz --x86 --lzma2=preset=9 -c "$NODE" > "$tmp/node.xz"
  mv -f "$tmp/node.xz" "$CARRY/node.xz"
fi

# 6. The Vulkan loader debs, exactly the device README's list (amd64, with a private package list).
missing=()
for d in "${DEBS[@]}"; do compgen -G ".gl/${d}_*.deb" >/dev/null || missing+=("$d"); done
if [ "${#missing[@]}" -gt 0 ]; then
  say "downloading ${missing[*]} into .gl/"
  mkdir -p "$tmp/apt/partial"
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$tmp/apt")
  apt-get "${o[@]}" update -qq >&2 || fail "apt-get update failed (network?)"
  (cd .gl && apt-get "${o[@]}" download "${missing[@]}" >&2) || fail "apt-get download ${missing[*]} failed"
fi
for d in "${DEBS[@]}"; do compgen -G ".gl/${d}_*.deb" >/dev/null || fail ".gl/${d}_*.deb missing"; done

# 7. The manifest gpu-run.sh checks.
{
  echo "node-version $NODE_VERSION"
  echo "node-sha256 $NODE_SHA"
  echo "dawn-sha256 $(sha256sum "$DAWN" | cut -d' ' -f1)"
  echo "webgpu-version $("$NODE" -p 'require("./node_modules/webgpu/package.json").version')"
  echo "packages ${PKGS[*]}"
  echo "debs $(cd .gl && ls *.deb | tr '\n' ' ')"
  echo "git-head $(git rev-parse HEAD)"
  echo "packed $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$CARRY/MANIFEST"

# 8. Sizes: the carried folders, and the checkout that travels with them (tracked + untracked-not-ignored).
bytes() { find "$@" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
carry_bytes="$(bytes "$CARRY" .gl)"
tree_bytes="$( { git ls-files -z -co --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }')"
# a shared/ folder in the checkout travels even when ignored (device README); a link travels as a link
if [ -d shared ] && [ ! -L shared ] && git check-ignore -q shared; then tree_bytes=$(( tree_bytes + $(bytes shared) )); fi
total=$(( carry_bytes + tree_bytes ))
echo
echo "carry kit in $ROOT:"
for f in "$CARRY"/*; do printf '  %-40s %10s\n' "$f" "$(mib "$(bytes "$f")")"; done
printf '  %-40s %10s  (%s files)\n' ".gl/*.deb" "$(mib "$(bytes .gl)")" "$(ls .gl/*.deb | wc -l)"
printf '  %-40s %10s\n' "carried (.gpu-carry + .gl)" "$(mib "$carry_bytes")"
printf '  %-40s %10s\n' "checkout (tracked, untracked, shared/)" "$(mib "$tree_bytes")"
printf '  %-40s %10s  (tool limit 64 MiB)\n' "TOTAL that travels" "$(mib "$total")"
[ "$total" -le $(( LIMIT_MIB * 1048576 )) ] || fail "$(mib "$total") travels, over the $LIMIT_MIB MiB this kit allows itself"
echo
echo "run it with the device tool:"
echo "  run(command=\"GPUKIT_DEADLINE=480 bash scripts/gpu-run.sh\", carry=[\".gpu-carry\", \".gl\"], timeout_s=540)"
