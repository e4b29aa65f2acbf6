#!/usr/bin/env bash
# Installs Airflow into its own venv, apart from the project's: .venvs/airflow.
#   batch/airflow_env.sh            # idempotent; AIRFLOW_VERSION / AIRFLOW_VENV override
# Every package is pinned by constraints/airflow.txt (scripts/lock.sh writes it): Airflow's
# published constraints live on GitHub, out of reach here. Another AIRFLOW_VERSION than the
# pinned one resolves from PyPI alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AIRFLOW_VENV:-$ROOT/.venvs/airflow}"
VERSION="${AIRFLOW_VERSION:-3.3.2}"
PYTHON="${AIRFLOW_PYTHON:-python3.11}"
CONSTRAINTS="$ROOT/constraints/airflow.txt"
PINS=()
if grep -qx "apache-airflow==$VERSION" "$CONSTRAINTS"; then
  PINS=(-c "$CONSTRAINTS")
else
  echo "airflow $VERSION is not the version $CONSTRAINTS pins: resolving without it" >&2
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# pip leaves what already satisfies the pins alone, so a re-run is quick. psycopg2 and asyncpg
# (Airflow's sync and async engines): the local stack keeps Airflow's metadata in PostgreSQL
# (database `airflow`, stack/airflow.py).
"$VENV/bin/pip" install -q "${PINS[@]}" "apache-airflow==$VERSION" psycopg2-binary asyncpg
"$VENV/bin/python" -c "import airflow; print('airflow', airflow.__version__, 'in $VENV')"
