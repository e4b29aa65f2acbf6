#!/usr/bin/env bash
# Re-resolve constraints/*.txt: fresh venvs, unconstrained installs from PyPI, `pip freeze`.
#   scripts/lock.sh              # both files; then `make test` on a fresh clone before committing
# Run it after changing pyproject.toml's dependencies or the Airflow version; the installs
# (stack/install.py, batch/airflow_env.sh, the Dockerfile) then take exactly these versions.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
AIRFLOW_VERSION="$(sed -n 's/^VERSION="${AIRFLOW_VERSION:-\(.*\)}"$/\1/p' "$ROOT/batch/airflow_env.sh")"
EXTRAS="$(sed -n 's/^EXTRAS = "\(.*\)"$/\1/p' "$ROOT/stack/install.py")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

freeze() {  # freeze NAME HEADER PIP-ARGS...
  local name="$1" header="$2"
  shift 2
  "$PYTHON" -m venv "$WORK/$name"
  "$WORK/$name/bin/pip" install -q --upgrade pip
  (cd "$ROOT" && "$WORK/$name/bin/pip" install -q "$@")
  { printf '%s\n' "$header"; "$WORK/$name/bin/pip" freeze --exclude-editable; } > "$ROOT/constraints/$name.txt"
  echo "constraints/$name.txt: $(grep -vc '^#' "$ROOT/constraints/$name.txt") packages"
}

freeze services "# The services' venv (.venv, the app image): every package pinned to the versions CI last passed with.
# Regenerate with scripts/lock.sh after changing pyproject.toml's dependencies." -e "$EXTRAS"
freeze airflow "# Airflow's own venv (.venvs/airflow, the airflow image): apache-airflow and all it pulls in, pinned.
# Airflow's published constraints live on GitHub, out of reach here; this is the same idea,
# resolved from PyPI. Regenerate with scripts/lock.sh." "apache-airflow==$AIRFLOW_VERSION" psycopg2-binary asyncpg
