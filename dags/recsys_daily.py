"""
### recsys_daily: the nightly batch layer

Every day at 02:00 UTC:

1. **archive** interactions older than the recent window (48 h before the run's logical date,
   so a run for a past night keeps that night's window) to Parquet (by date), deleting
   them from PostgreSQL only once the written files were read back and counted
   (`batch.archive`): this task is what keeps `rt_user_interactions` a window;
2. **train** Spark ALS on the year up to the newest event (`recsys.windows`), from the archive
   and PostgreSQL; the task returns the new model version (`batch.als.train --stage fit`);
3. **evaluate** the new and the live model on the same holdout; the gate records the new one as
   `candidate` or `rejected` (`--stage evaluate`);
4. **publish** a candidate: its rows are staged beside the live ones, then one transaction
   switches to it (`--stage publish`);
5. **invalidate_cache**: drop the cached recommendation lists (`--stage invalidate`).

Airflow lives in its own venv (`.venvs/airflow`); every task runs our code as a subprocess of
the project's interpreter (`RECSYS_PYTHON`, default `<repo>/.venv/bin/python`), with the
worker's environment (DATABASE_URL, REDIS_URL, ARCHIVE_URI, MODEL_DIR, ... or `.env`).
Nothing connects anywhere when the file is parsed. The local stack runs Airflow's scheduler
(stack/programs.py) and the DAG starts unpaused, so a stack left up runs it every night.
"""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import dag, get_current_context, task

REPO = Path(__file__).resolve().parent.parent


def _run(*args: str) -> str:
    """Run `python -m <args>` in the project's venv; returns its last stdout line."""
    python = os.environ.get("RECSYS_PYTHON", str(REPO / ".venv" / "bin" / "python"))
    proc = subprocess.run([python, "-m", *args], cwd=REPO, capture_output=True, text=True, check=False)
    print(proc.stdout[-20000:])
    print(proc.stderr[-20000:])
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}")
    lines = [line for line in proc.stdout.splitlines() if line.strip() and not line.startswith("{")]
    return lines[-1].strip() if lines else ""


@dag(
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    # Unpaused from the start: the nightly job is part of the system, not an opt-in.
    is_paused_upon_creation=False,
    tags=["recsys", "batch", "als"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    doc_md=__doc__,
)
def recsys_daily() -> None:
    """Archive, train, evaluate, publish and invalidate: the nightly half of the lambda."""

    @task(execution_timeout=timedelta(hours=1))
    def archive() -> str:
        as_of = get_current_context().get("logical_date")
        return _run("batch.archive", *(["--as-of", as_of.isoformat()] if as_of else []))

    @task(execution_timeout=timedelta(hours=2))
    def train(archived: str) -> str:
        """Fits a new model; returns its version ('' when there was nothing to train on)."""
        return _run("batch.als.train", "--stage", "fit")

    @task(execution_timeout=timedelta(minutes=30))
    def evaluate(version: str) -> str:
        """Gates the new model: 'candidate' or 'rejected'."""
        if not version:
            return "none"
        return _run("batch.als.train", "--stage", "evaluate", "--version", version)

    @task(execution_timeout=timedelta(minutes=30))
    def publish(version: str, status: str) -> bool:
        if status != "candidate":
            print(f"model {version or '-'} is {status}: the live model stays")
            return False
        _run("batch.als.train", "--stage", "publish", "--version", version)
        return True

    @task(retries=3)
    def invalidate_cache(published: bool) -> None:
        if published:
            _run("batch.als.train", "--stage", "invalidate")

    version = train(archive())
    invalidate_cache(publish(version, evaluate(version)))


recsys_daily_dag = recsys_daily()

if __name__ == "__main__":
    recsys_daily_dag.test()
