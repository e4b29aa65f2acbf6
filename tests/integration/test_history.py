"""History trains: rows the archive really holds, and an imported MovieLens, reach the model.

- The DAG's archive task (`python -m batch.archive`) moves rows older than 48 h out of
  PostgreSQL into Parquet; the next training run reads them back from the Parquet files, and
  the model's `trained_on` counts them apart from PostgreSQL's rows.
- MovieLens 100K (1997-98) imported with `recsys-import`, then `python -m batch.als.train`, as
  the README says: every rating is history, so all of it is filed into the archive; the live
  model is trained on exactly the imported data, and served through a gateway: an Envoy
  rendered from the stack's template in front of a recommender and a profile service on this
  module's database (the stack's own serve the shared `recsys` database, which these tests
  must not replace the model of).

Each test has its own database on the stack's PostgreSQL and its own archive and model folders.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from alembic import command

from recsys.migrate import alembic_config
from stack import checks
from stack.config import StackConfig
from stack.envoy import render_text
from tests.conftest import StackInfo
from tests.integration.scratch import scratch_database
from tests.tokens import auth_headers

pytestmark = [pytest.mark.stack, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable
BIN = Path(PYTHON).parent
# Small and quick; these tests check what the model was trained on, not how well.
FAST = '{"rank": 16, "max_iter": 6}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(stack: StackInfo, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """A migrated database of the test's own, an empty archive and model folder, Redis db 14."""
    name = f"recsys_history_{request.node.name[5:30]}_{os.getpid()}".lower()
    with scratch_database(stack.database_url, name) as url:
        command.upgrade(alembic_config(url), "head")
        yield {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": stack.redis_url.rsplit("/", 1)[0] + "/14",
            "ARCHIVE_URI": str(tmp_path / "archive"),
            "MODEL_DIR": str(tmp_path / "models"),
            "SPARK_DRIVER_MEMORY": "2g",
        }


def run_lines(env: dict[str, str], *args: str) -> list[str]:
    """What a job printed for people (not its JSON log lines)."""
    proc = subprocess.run(
        [PYTHON, "-m", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [x for x in proc.stdout.splitlines() if x.strip() and not x.startswith("{")]


def run(env: dict[str, str], *args: str) -> str:
    lines = run_lines(env, *args)
    return lines[-1] if lines else ""


def live_model(env: dict[str, str]) -> tuple[str, dict[str, object]]:
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT version, trained_on FROM models WHERE status = 'live'").fetchone()
    assert row is not None, "no live model"
    return row[0], row[1]


def archived(env: dict[str, str]) -> pd.DataFrame:
    """The archive's rows, read with pandas/pyarrow (not with the code under test)."""
    parts = sorted(Path(env["ARCHIVE_URI"]).glob("date=*/*.parquet"))
    assert parts, f"nothing archived under {env['ARCHIVE_URI']}"
    return pd.concat([pd.read_parquet(p).assign(date=p.parent.name[5:]) for p in parts])


# --------------------------------------------------------------------------- the archive task


def test_training_reads_the_rows_the_archive_task_archived(env: dict[str, str]) -> None:
    """Users 1-40 were active 3-20 days ago only (archived), users 41-60 in the last hours."""
    now = datetime.now(UTC)
    movies = range(1, 61)
    rows = []
    for user in range(1, 61):
        old = user <= 40
        for i in range(10):
            movie = movies[(user * 7 + i * 3) % 60]
            when = now - (timedelta(days=3 + (user + i) % 18) if old else timedelta(hours=1 + i))
            rows.append((f"h-{user}-{movie}", user, movie, "rate", 4.0 + (i % 2), when))
    n_old = sum(1 for r in rows if r[1] <= 40)
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        with conn.cursor().copy("COPY movies (movie_id, title) FROM STDIN") as copy:
            for m in movies:
                copy.write_row((m, f"Movie {m}"))
        with conn.cursor().copy(
            "COPY rt_user_interactions (event_id, user_id, movie_id, event_type, rating, occurred_at)"
            " FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)

    # Its first line; the second reports the erasure pass (DeleteUser's tombstones).
    assert run_lines(env, "batch.archive")[0] == f"archived {n_old} rows, deleted {n_old}"
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        left = conn.execute("SELECT count(*), min(occurred_at) FROM rt_user_interactions").fetchone()
    assert left is not None and left[0] == len(rows) - n_old and left[1] > now - timedelta(hours=48)
    files = archived(env)
    assert sorted(files["event_id"]) == sorted(r[0] for r in rows if r[1] <= 40)

    version = run(env, "batch.als.train", "--params", FAST).split()[0]
    assert live_model(env)[0] == version
    trained_on = live_model(env)[1]
    assert trained_on["events_archive"] == n_old
    assert trained_on["events_postgres"] == len(rows) - n_old
    assert trained_on["events"] == len(rows) and trained_on["users"] == 60
    # The users known only from the archive got vectors and lists from this model.
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        served = conn.execute(
            "SELECT count(DISTINCT user_id) FROM batch_recommendations "
            "WHERE model_version = %s AND user_id <= 40",
            (version,),
        ).fetchone()
    assert served == (40,)


# --------------------------------------------------------------------------- MovieLens 100K


@pytest.fixture(scope="module")
def ml100k() -> Path:
    raw = os.environ.get("MOVIELENS_DIR") or "../shared/data/movielens"
    path = (Path(raw) if Path(raw).is_absolute() else (REPO / raw).resolve()) / "ml-100k"
    if not (path / "u.data").is_file():
        pytest.fail(f"MovieLens 100K not found at {path} (set MOVIELENS_DIR)", pytrace=False)
    return path


@pytest.fixture
def gateway(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """Envoy (the stack's template) -> recommender + profile services on `env`'s database.
    Yields Envoy's REST base URL."""
    # Every port a process of its own binds, its /metrics included: the stack's are taken.
    ports = {k: str(free_port()) for k in ("ENVOY_PORT", "ENVOY_ADMIN_PORT", "RECOMMENDER_PORT",
                                           "PROFILE_PORT", "EVENT_PORT", "RECOMMENDER_METRICS_PORT",
                                           "PROFILE_METRICS_PORT", "EVENT_METRICS_PORT")}  # fmt: skip
    # The stack's STACK_DIR still: the gateway and services verify tokens with its keys.
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    access_log = str(logs_dir / "envoy-access.log")
    cfg = StackConfig.load({**env, **ports, "ENVOY_ACCESS_LOG": access_log, "TRACE_SAMPLE_RATIO": "0"})
    config = tmp_path / "envoy.yaml"
    config.write_text(render_text(cfg))
    child = {**cfg.child_env(), "DATABASE_URL": env["DATABASE_URL"], "REDIS_URL": env["REDIS_URL"]}
    procs = []
    logs = []
    try:
        for name, cmd in (
            ("profile", [PYTHON, "-m", "profile_svc"]),
            ("recommender", [PYTHON, "-m", "recommender_svc"]),
            ("envoy", [str(BIN / "envoy"), "-c", str(config), "--disable-hot-restart",
                       "--concurrency", "1", "--log-level", "warn"]),
        ):  # fmt: skip
            log = open(logs_dir / f"{name}.log", "w")  # closed in the finally below
            logs.append(log)
            procs.append(subprocess.Popen(cmd, env=child, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while True:
            try:
                checks.grpc_health(f"127.0.0.1:{ports['PROFILE_PORT']}", "recsys.v1.ProfileService")
                checks.grpc_health(f"127.0.0.1:{ports['RECOMMENDER_PORT']}", "recsys.v1.RecommenderService")
                checks.envoy(cfg)
                break
            except Exception as exc:
                dead = [p.args[0] for p in procs if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    tails = {n.name: Path(n.name).read_text()[-1500:] for n in logs}
                    pytest.fail(f"gateway not ready ({exc}; exited: {dead}): {tails}")
                time.sleep(0.5)
        yield cfg.envoy_url
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


def test_movielens_100k_imported_then_trained_is_the_served_model(
    env: dict[str, str], ml100k: Path, request: pytest.FixtureRequest
) -> None:
    ratings = pd.read_csv(ml100k / "u.data", sep="\t", names=["user_id", "movie_id", "rating", "ts"])

    done = subprocess.run(
        [str(BIN / "recsys-import"), "movielens", str(ml100k), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "100000 interactions (0 new in the recent window, 100000 new in the archive)" in done.stdout
    assert len(archived(env)) == len(ratings)

    first = run(env, "batch.als.train", "--params", FAST)
    version, state = first.split()
    assert state == "live"
    v, trained_on = live_model(env)
    assert v == version
    assert trained_on["events"] == trained_on["events_archive"] == len(ratings) == 100_000
    assert trained_on["events_postgres"] == 0
    assert trained_on["users"] == ratings["user_id"].nunique() == 943
    # The window ends at the newest rating (1998-04-22), not today.
    assert str(trained_on["until"]).startswith(
        datetime.fromtimestamp(int(ratings["ts"].max()), UTC).isoformat()[:19]
    )
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        n_items = conn.execute(
            "SELECT count(*) FROM model_item_factors WHERE model_version = %s", (version,)
        ).fetchone()
    # Every movie with a rating in the 80 % the model fits on has an embedding.
    assert n_items is not None and n_items[0] == trained_on["movies"] and 1_600 < n_items[0] <= 1_682

    base = request.getfixturevalue("gateway")
    seen = ratings.groupby("user_id")["movie_id"].apply(set)
    for user in (1, 196, 405, 655, 943):
        url = f"{base}/v1/users/{user}/recommendations?limit=10"
        with urllib.request.urlopen(urllib.request.Request(url, headers=auth_headers()), timeout=10) as r:
            reply = json.loads(r.read())
        served = [int(item["movie"]["movieId"]) for item in reply["items"]]
        assert reply["modelVersion"] == version, reply
        assert reply["tier"] in ("TIER_REALTIME", "TIER_BATCH"), reply["tier"]
        assert len(served) == 10
        assert not set(served) & seen[user], f"user {user} was served movies they rated in 1997-98"
