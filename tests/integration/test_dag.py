"""The recsys_daily DAG, run by the Airflow of its own venv (.venvs/airflow, batch/airflow_env.sh).

- the DagBag imports `dags/` without errors, and parsing opens no connection (the DB/Redis
  settings point nowhere while parsing);
- a real `dag.test()` run of recsys_daily against the stack, in the batch tests' database.

AIRFLOW_HOME is `$STACK_DIR/airflow` (.stack/airflow): Airflow's config and its SQLite metadata
database live with the rest of the stack's state; `airflow db migrate` runs once per session
(idempotent) before the first `dag.test()`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from stack.config import StackConfig
from tests.integration.batchdata import seed

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_PY = REPO / ".venvs" / "airflow" / "bin" / "python"

DAGBAG = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=%r)
dag = bag.dags.get("recsys_daily")
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": sorted(bag.dags),
    "tasks": [t.task_id for t in dag.topological_sort()] if dag else [],
    "schedule": f"{dag.timetable.expression} {dag.timetable.timezone}" if dag else None,
    "catchup": dag.catchup if dag else None,
    "retries": [t.retries for t in dag.tasks] if dag else [],
    "tz": str(dag.timezone) if dag else None,
}))
"""

DAG_TEST = """
import runpy
ns = runpy.run_path(%r)
run = ns["recsys_daily_dag"].test()
print("DAGRUN_STATE", run.state)
"""


def airflow_home() -> Path:
    home = StackConfig.load().dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    return home


def airflow_env(base: dict[str, str]) -> dict[str, str]:
    assert AIRFLOW_PY.exists(), "no Airflow venv: run `make install` (batch/airflow_env.sh)"
    return {
        **base,
        "AIRFLOW_HOME": str(airflow_home()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "RECSYS_PYTHON": str(REPO / ".venv" / "bin" / "python"),
    }


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's metadata database in AIRFLOW_HOME (idempotent: quick once migrated)."""
    proc = subprocess.run(
        [str(AIRFLOW_PY.parent / "airflow"), "db", "migrate"],
        env=airflow_env(dict(os.environ)), capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def test_dagbag_has_no_import_errors() -> None:
    # Settings that would fail any connection attempt: parsing must not need them.
    env = airflow_env({**os.environ, "DATABASE_URL": "postgresql://nobody@192.0.2.1:1/x",
                                 "REDIS_URL": "redis://192.0.2.1:1/0"})
    proc = subprocess.run(
        [str(AIRFLOW_PY), "-c", DAGBAG % str(REPO / "dags")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == {}
    assert "recsys_daily" in out["dags"]
    assert out["tasks"] == ["archive", "train", "evaluate", "publish", "invalidate_cache"]
    assert "0 2 * * *" in out["schedule"] and "UTC" in out["schedule"]
    assert out["catchup"] is False and out["tz"] == "UTC"
    assert all(r >= 1 for r in out["retries"])


@pytest.mark.stack
@pytest.mark.slow
def test_dag_test_run_against_the_stack(batch_env: dict[str, str], airflow_db: None) -> None:
    seed(batch_env)
    env = airflow_env(batch_env)
    proc = subprocess.run(
        [str(AIRFLOW_PY), "-c", DAG_TEST % str(REPO / "dags" / "recsys_daily.py")],
        env=env, capture_output=True, text=True, timeout=1500, check=False,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert "DAGRUN_STATE success" in proc.stdout, tail
    with psycopg.connect(batch_env["DATABASE_URL"]) as conn:
        live = conn.execute("SELECT version, metrics FROM models WHERE status = 'live'").fetchone()
        assert live is not None and "ndcg@10" in live[1]
        assert conn.execute(
            "SELECT count(*) FROM batch_recommendations WHERE model_version = %s", (live[0],)
        ).fetchone()[0] > 0  # type: ignore[index]
