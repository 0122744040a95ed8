#!/usr/bin/env bash
# Installs what `loadtest instructions` needs: valgrind (callgrind and callgrind_control),
# from Debian's archive, when it is not there yet. Idempotent; safe from several processes.
set -euo pipefail
if command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then
  exit 0
fi
exec 9>/tmp/mcpgate-loadtest-setup.lock
flock 9
if command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  apt_get=(apt-get)
else
  apt_get=(sudo -n apt-get)
fi
DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" update -qq
DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends valgrind >/dev/null
