#!/usr/bin/env bash
# Installs what the console's browser tests drive: Debian's Chromium (from the Debian
# archive; a test tool's own browser download does not work here) and playwright-core
# (pinned, npm) into tests/e2e/.deps (git-ignored), and curl (the connect panel's example is
# run as pasted). Idempotent; safe from several processes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
deps="$here/.deps"
mkdir -p "$deps"
exec 9>"$deps/.lock"
flock 9

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/curl ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt_get=(apt-get)
  else
    apt_get=(sudo -n apt-get)
  fi
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends chromium fonts-dejavu-core curl ca-certificates >/dev/null
fi

stamp="$deps/.installed-$(sha256sum "$here/package-lock.json" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  rm -rf "$deps/node_modules"
  cp "$here/package.json" "$here/package-lock.json" "$deps/"
  (cd "$deps" && npm ci --silent --no-audit --no-fund)
  touch "$stamp"
fi
cp "$here/console.mjs" "$here/health.mjs" "$here/sso.mjs" "$deps/"
