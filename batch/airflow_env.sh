#!/usr/bin/env bash
# Installs Airflow into its own venv, apart from the project's: .venvs/airflow.
#   batch/airflow_env.sh            # idempotent; AIRFLOW_VERSION / AIRFLOW_VENV override
# The constraints file lives on GitHub (unreachable offline), so pip resolves from PyPI alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AIRFLOW_VENV:-$ROOT/.venvs/airflow}"
VERSION="${AIRFLOW_VERSION:-3.3.2}"
PYTHON="${AIRFLOW_PYTHON:-python3.11}"
if [ -x "$VENV/bin/airflow" ] && "$VENV/bin/python" -c "import airflow, sys; sys.exit(airflow.__version__ != '$VERSION')" 2>/dev/null; then
  echo "airflow $VERSION already in $VENV"
  exit 0
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "apache-airflow==$VERSION"
"$VENV/bin/python" -c "import airflow; print('airflow', airflow.__version__, 'in $VENV')"
