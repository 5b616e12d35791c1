#!/usr/bin/env bash
# Sets up a fresh machine for Retrace: system packages (gVisor's runsc, bubblewrap, Chromium for the
# browser tests) and a virtualenv in .venv with the pinned Python dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v runsc >/dev/null 2>&1 || need+=(runsc)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need[*]}"
  if [ "$(id -u)" = 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check "pip==26.3" 2>/dev/null || true
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
echo "setup: ready ($(.venv/bin/python --version), $(command -v runsc || echo 'no runsc'))"
