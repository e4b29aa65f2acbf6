"""Spark's own standalone cluster, for real: the jobs run on its workers, not in their driver.

The test starts a master and two workers with the stack's own program definitions
(stack/spark.py, what `SPARK_WORKERS=2 make up` runs under supervisord) on ports of its own,
then runs on them, against the running stack:
- the nightly training (`batch.als.train --stage fit`): it succeeds, and each worker ran an
  executor of it;
- the streaming job (`python -m batch.streaming`, its own checkpoint): events posted through
  Envoy are read and written by it while its executors run on both workers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stack import spark
from stack.config import StackConfig
from tests.tokens import auth_headers

pytestmark = [pytest.mark.stack, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PORTS = {"SPARK_WORKERS": "2", "SPARK_MASTER_PORT": "17077", "SPARK_MASTER_WEBUI_PORT": "18090"}


def _wait(probe: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return probe()
        except Exception as e:  # not ready yet
            last = e
        time.sleep(1)
    raise AssertionError(f"{what} not ready after {timeout:.0f}s: {last}")


def _worker_json(cfg: StackConfig, i: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{spark.webui_port(cfg, i)}/json/", timeout=5) as r:
        return dict(json.loads(r.read()))


def _executor_apps(cfg: StackConfig, i: int, finished: bool) -> set[str]:
    key = "finishedexecutors" if finished else "executors"
    return {e["appid"] for e in _worker_json(cfg, i).get(key, [])}


@pytest.fixture(scope="module")
def cluster(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    cfg = StackConfig.load({**os.environ, **PORTS, "STACK_DIR": str(tmp_path_factory.mktemp("spark"))})
    with spark.cluster(cfg, 2, timeout=90) as running:
        yield running


def _job_env(stack: Any, cfg: StackConfig) -> dict[str, str]:
    env = {**os.environ, **stack.cfg.child_env(), **spark.job_env(cfg)}
    env["SPARK_DRIVER_MEMORY"] = "1g"
    env["STREAMING_METRICS_PORT"] = "0"  # the stack's own job has the port
    return env


def test_the_stack_would_submit_every_job_to_its_cluster(cluster: StackConfig) -> None:
    assert spark.job_env(cluster)["SPARK_MASTER"] == "spark://127.0.0.1:17077"
    assert cluster.child_env()["SPARK_MASTER"] == "spark://127.0.0.1:17077"
    alive = [w for w in spark.master_status(cluster)["workers"] if w["state"] == "ALIVE"]
    assert len(alive) == 2


def test_training_runs_on_the_workers(stack: Any, cluster: StackConfig) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch.als.train",
            "--stage",
            "fit",
            "--params",
            '{"rank": 16, "max_iter": 5}',
        ],
        cwd=REPO,
        env=_job_env(stack, cluster),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # The version is the last line that is not a (JSON) log record, as the DAG reads it.
    version = [x for x in run.stdout.splitlines() if x.strip() and not x.startswith("{")][-1].strip()
    try:
        apps = spark.master_status(cluster)["completedapps"]
        train = [a for a in apps if a["name"] == "recsys-als-train"]
        assert train, f"no completed training app on the master: {[a['name'] for a in apps]}"
        app_id = train[-1]["id"]
        for i in (1, 2):
            assert app_id in _executor_apps(cluster, i, finished=True), f"worker {i} ran no executor of it"
        with psycopg.connect(stack.database_url) as conn:
            row = conn.execute("SELECT trained_on FROM models WHERE version = %s", (version,)).fetchone()
        assert row is not None and row[0]["events"] > 0
    finally:
        with psycopg.connect(stack.database_url) as conn:
            conn.execute("DELETE FROM models WHERE version = %s AND status = 'training'", (version,))
        shutil.rmtree(Path(stack.env["MODEL_DIR"]) / version, ignore_errors=True)


def _post(stack: Any, user: int, movie: int) -> None:
    body = json.dumps({"userId": str(user), "movieId": str(movie), "type": "EVENT_TYPE_CLICK"}).encode()
    req = urllib.request.Request(
        f"{stack.envoy_url}/v1/events",
        data=body,
        method="POST",
        headers={"content-type": "application/json", **auth_headers()},
    )
    with urllib.request.urlopen(req, timeout=15) as resp:
        assert resp.status == 200


def test_the_streaming_job_runs_on_the_workers(stack: Any, cluster: StackConfig, tmp_path: Path) -> None:
    name = f"cluster-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "streaming.log"
    env = _job_env(stack, cluster)
    command = [
        sys.executable,
        "-m",
        "batch.streaming",
        "--name",
        name,
        "--checkpoint",
        str(tmp_path / "checkpoint"),
        "--starting-offsets",
        "latest",
        "--trigger-seconds",
        "1",
    ]
    with open(log_path, "wb") as log:
        job = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        status_file = Path(env["STACK_DIR"]) / name / "status.json"

        def first_batch_done() -> dict[str, Any]:
            # `latest` is resolved by the first batch: events posted before it would be skipped.
            status = dict(json.loads(status_file.read_text()))
            if status.get("batch_id") is None:
                raise RuntimeError("no batch completed yet")
            return status

        _wait(first_batch_done, 240, "the cluster's streaming query")
        apps = _wait(
            lambda: (
                [a for a in spark.master_status(cluster)["activeapps"] if a["name"] == "recsys-streaming"]
                or (_ for _ in ()).throw(RuntimeError("not registered"))
            ),
            60,
            "the streaming app on the master",
        )
        with psycopg.connect(stack.database_url) as conn:
            movie = conn.execute("SELECT movie_id FROM movies ORDER BY movie_id LIMIT 1").fetchone()[0]
        user = 7_000_000_000 + uuid.uuid4().int % 1_000_000_000
        for _ in range(3):
            _post(stack, user, movie)

        def written() -> int:
            lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
            total = sum(int(x.get("events", 0)) for x in lines if x.get("msg") == "batch written")
            if total < 3:
                raise RuntimeError(f"{total} events written so far")
            return total

        _wait(written, 120, "the cluster's streaming job writing the events")
        for i in (1, 2):
            assert apps[0]["id"] in _executor_apps(cluster, i, finished=False), f"no executor on worker {i}"
    finally:
        job.send_signal(signal.SIGTERM)
        try:
            job.wait(timeout=60)
        except subprocess.TimeoutExpired:
            job.kill()
