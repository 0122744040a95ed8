#!/usr/bin/env bash
# Installs the pinned official MCP SDKs, reference server and conformance suite the interop
# and conformance tests drive, and schemathesis for the REST API's property tests, into
# tests/interop/.deps (git-ignored). Idempotent and safe to run from several test processes at once.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
deps="$here/.deps"
mkdir -p "$deps"
exec 9>"$deps/.lock"
flock 9

for line in "mcp1 requirements-mcp1.txt" "mcp2 requirements-mcp2.txt" "api requirements-api.txt" "stdio requirements-stdio.txt"; do
  set -- $line
  name=$1 requirements="$here/$2"
  stamp="$deps/$name/.installed-$(sha256sum "$requirements" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    rm -rf "${deps:?}/$name"
    python3 -m venv "$deps/$name"
    "$deps/$name/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    touch "$stamp"
  fi
done

stamp="$deps/node/.installed-$(sha256sum "$here/node/package-lock.json" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  rm -rf "${deps:?}/node"
  mkdir -p "$deps/node"
  cp "$here/node/package.json" "$here/node/package-lock.json" "$deps/node/"
  (cd "$deps/node" && npm ci --silent --no-audit --no-fund)
  touch "$stamp"
fi
# The driver script runs beside its node_modules (ES modules resolve from the script's folder).
cp "$here/node/client.mjs" "$here/node/affinity.mjs" "$here/node/oauth.mjs" "$here/node/idp.mjs" "$here/node/sign-jwt.mjs" "$here/node/petstore.mjs" "$here/node/protected-mcp.mjs" "$deps/node/"
# The conformance run's fixture upstream and the conformance CLI's preload, likewise.
mkdir -p "$deps/node/conformance"
cp "$here/../conformance/"*.mjs "$deps/node/conformance/"
