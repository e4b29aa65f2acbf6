#!/usr/bin/env bash
# First step of `make up` / `make test` on any machine: find (or apt-get) Python 3.11, then
# run the idempotent installer `python3.11 -m stack install` (stdlib only; it creates .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo -n); fi
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get install -y --no-install-recommends "$@" \
    || { "${SUDO[@]}" apt-get update && "${SUDO[@]}" apt-get install -y --no-install-recommends "$@"; }
}

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    PY=.venv/bin/python
  elif command -v python3.11 >/dev/null; then
    PY=python3.11
  else
    apt_install python3.11 python3.11-venv
    PY=python3.11
  fi
fi
# Debian's python3.11 needs python3.11-venv for `-m venv` (ensurepip)
if [ ! -x .venv/bin/python ] && ! "$PY" -c 'import ensurepip' 2>/dev/null; then
  apt_install python3.11-venv
fi
exec "$PY" -m stack install "$@"
