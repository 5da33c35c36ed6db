#!/usr/bin/env bash
# Makes Debian's chromium available at /usr/bin/chromium for the browser tests; idempotent (a file check when it
# is there). Installs with apt-get only when missing, which needs root and Debian's package registry. Exits 0 when
# chromium runs; otherwise exits 1 with the reason on stderr (the tests then skip, saying why).
set -uo pipefail
CHROMIUM=/usr/bin/chromium
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$root/.cache"
# One installer at a time: two test runs must not race on dpkg's lock.
exec 9>"$root/.cache/chromium.lock"
flock 9
if [ ! -x "$CHROMIUM" ]; then
  if ! command -v apt-get >/dev/null; then echo "no $CHROMIUM and no apt-get to install it" >&2; exit 1; fi
  if [ "$(id -u)" != 0 ]; then echo "no $CHROMIUM, and installing it needs root" >&2; exit 1; fi
  echo "installing Debian's chromium (once) ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; } >&2; then
    echo "apt-get install chromium failed" >&2
    exit 1
  fi
fi
if ! version="$("$CHROMIUM" --headless --no-sandbox --version 2>&1)"; then
  echo "$CHROMIUM does not run: $version" >&2
  exit 1
fi
echo "$version"
