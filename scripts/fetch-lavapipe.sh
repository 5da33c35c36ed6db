#!/usr/bin/env bash
# Fetches Mesa's software Vulkan driver (lavapipe) from Debian bookworm-backports into $1, without
# touching the system: a private sources.list, lists and cache directory, then dpkg-deb -x.
# Dawn rejects bookworm's own Mesa 22.3; Mesa 25 from backports works (FACTS.md).
set -euo pipefail
dest="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$dest/lib"
cat > "$work/sources.list" <<SRC
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-backports main
SRC
apt_opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache" -o "APT::Architecture=amd64" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
echo "[setup] fetching lavapipe (Mesa software Vulkan) from bookworm-backports" >&2
apt-get "${apt_opts[@]}" update -qq >&2
(cd "$work/debs" && apt-get "${apt_opts[@]}" download \
  mesa-vulkan-drivers/bookworm-backports libdrm2/bookworm-backports libvulkan1 >&2)
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
cp -L "$work"/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so \
  "$work"/root/usr/lib/x86_64-linux-gnu/libvulkan.so.1 \
  "$work"/root/usr/lib/x86_64-linux-gnu/libdrm.so.2 "$dest/lib/"
# A relative library_path is resolved against the manifest's folder, so the cache can move.
cat > "$dest/icd.json" <<JSON
{ "file_format_version": "1.0.0", "ICD": { "library_path": "./lib/libvulkan_lvp.so", "api_version": "1.3.0" } }
JSON
missing="$(LD_LIBRARY_PATH="$dest/lib" ldd "$dest/lib/libvulkan_lvp.so" | grep 'not found' || true)"
if [ -n "$missing" ]; then
  echo "[setup] lavapipe needs libraries this machine lacks (apt-get install them):" >&2
  echo "$missing" >&2
  exit 1
fi
