"""recsys_daily as the local stack's own Airflow runs it (stack/airflow.py: API server, scheduler
with the LocalExecutor, DAG processor, metadata in PostgreSQL's `airflow` database).

- The DAG is registered, unpaused, and due at 02:00 UTC: a stack left up runs the nightly job.
- A run triggered through the REST API (`POST /api/v2/dags/recsys_daily/dagRuns`, with a JWT
  from `/auth/token`) is picked up by the scheduler, and succeeds with every task, within a
  bound. It is the real job on the stack's own database, as the 02:00 run would be: the archive
  task leaves only the 48 h before the run's logical date in PostgreSQL, a model is trained and
  either published or rejected by the gate, and `models` records the version the train task
  returned.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from recsys import windows
from stack import airflow
from tests.conftest import StackInfo

pytestmark = [pytest.mark.stack, pytest.mark.slow]

DAG = "recsys_daily"
TASKS = {"archive", "train", "evaluate", "publish", "invalidate_cache"}
# Archive + a full-size ALS fit on the demo data + evaluate + publish take 3-5 minutes on the
# 2-core box; the bound leaves room for a busy machine, not for a hang.
RUN_TIMEOUT_SECONDS = 20 * 60


@pytest.fixture(scope="module")
def api(stack: StackInfo) -> airflow.Api:
    return airflow.Api(stack.cfg)


def test_the_api_needs_a_token(stack: StackInfo) -> None:
    req = urllib.request.Request(f"{airflow.base_url(stack.cfg)}/api/v2/dags/{DAG}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 401


def test_recsys_daily_is_scheduled_and_unpaused(api: airflow.Api) -> None:
    dag = api.get(f"/api/v2/dags/{DAG}")
    assert dag["is_paused"] is False
    assert dag["timetable_summary"] == "0 2 * * *"
    due = datetime.fromisoformat(dag["next_dagrun_logical_date"].replace("Z", "+00:00"))
    assert (due.hour, due.minute) == (2, 0)
    assert due - datetime.now(UTC) <= timedelta(days=1)
    health = api.get("/api/v2/monitor/health")
    assert health["scheduler"]["status"] == health["dag_processor"]["status"] == "healthy"


def test_triggered_run_succeeds_through_the_scheduler(api: airflow.Api, stack: StackInfo) -> None:
    run_id = f"test_airflow__{int(time.time())}"
    logical = datetime.now(UTC)
    created = api.trigger(DAG, run_id, logical)
    assert created["dag_run_id"] == run_id and created["state"] == "queued"
    state = api.wait(DAG, run_id, RUN_TIMEOUT_SECONDS)
    tasks = api.task_states(DAG, run_id)
    assert state == "success", f"run {run_id} is {state} after the wait; tasks: {tasks}"
    assert tasks == dict.fromkeys(TASKS, "success")

    version = api.xcom(DAG, run_id, "train")
    status = api.xcom(DAG, run_id, "evaluate")
    with psycopg.connect(stack.database_url) as conn:
        model = conn.execute(
            "SELECT status, trained_on FROM models WHERE version = %s", (version,)
        ).fetchone()
        # The archive's "now" is the run's logical date (the run may wait behind the 02:00 one a
        # fresh stack starts at once): nothing older than the window before it may remain.
        stale = conn.execute(
            "SELECT count(*) FROM rt_user_interactions WHERE occurred_at < %s",
            (logical - windows.RECENT,),
        ).fetchone()
    assert model is not None, f"train returned {version!r}, which models does not hold"
    assert model[0] in ("live", "rejected", "retired") and status in ("candidate", "rejected")
    trained = model[1]
    # The demo data's older days were filed into the archive by the importer; training read
    # them (each event once, ids outside Spark ALS's 32-bit range left out).
    assert trained["events_archive"] > 0 and trained["events_postgres"] > 0
    assert 0 < trained["events"] <= trained["events_archive"] + trained["events_postgres"]
    assert stale == (0,), "the archive task left rows older than the window in PostgreSQL"
