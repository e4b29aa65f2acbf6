"""The batch layer against the real stack, in its own database (recsys_batch_test).

Publishing changes the live model, so these tests never touch the shared `recsys` database:
a fresh database is created and migrated, and Redis db 15 stands in for the cache.
Ids are >= 800000000 anyway.
"""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
import redis

from recsys.domain.recency import COVISIT_NEIGHBOURS
from tests.integration.batchdata import (
    BASE,
    CLUSTERS,
    MOVIES_PER_CLUSTER,
    PYTHON,
    REPO,
    USERS_PER_CLUSTER,
    seed,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]

FAST = '{"rank": 8, "max_iter": 6}'


def sh(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [PYTHON, "-m", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [x for x in proc.stdout.splitlines() if x.strip() and not x.startswith("{")]
    return lines[-1] if lines else ""


def live(env: dict[str, str]) -> str | None:
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT version FROM models WHERE status = 'live'").fetchone()
    return row[0] if row else None


def test_train_publish_gate_switch_rollback(batch_env: dict[str, str]) -> None:
    env = batch_env
    seed(env)
    first = sh(env, "batch.als.train", "--first-run", "--params", FAST)
    v1 = first.split()[0]
    assert first.endswith(" live") and live(env) == v1
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(DISTINCT model_version) FROM movies").fetchone() == (1,)
        n_recs, n_users = conn.execute(
            "SELECT count(*), count(DISTINCT user_id) FROM batch_recommendations WHERE model_version = %s",
            (v1,),
        ).fetchone()  # type: ignore[misc]
        assert n_users == CLUSTERS * USERS_PER_CLUSTER and n_recs > 0
        # No recommendation is a movie the user has already seen.
        assert conn.execute(
            "SELECT count(*) FROM batch_recommendations b JOIN rt_user_interactions i "
            "USING (user_id, movie_id) WHERE b.model_version = %s",
            (v1,),
        ).fetchone() == (0,)
        dims = conn.execute("SELECT vector_dims(embedding) FROM movies LIMIT 1").fetchone()
        assert dims == (64,)
        # Its co-visits (batch.als.covisit) are staged with it: catalogue movies, capped per movie.
        pairs, strays, widest = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM movies m"
            " WHERE m.movie_id = c.neighbour_id)), max(n) FROM model_covisits c,"
            " LATERAL (SELECT count(*) AS n FROM model_covisits d WHERE d.model_version = c.model_version"
            " AND d.movie_id = c.movie_id) w WHERE c.model_version = %s",
            (v1,),
        ).fetchone()  # type: ignore[misc]
        assert pairs > 0 and strays == 0 and widest <= COVISIT_NEIGHBOURS
    # --first-run is a no-op once a model is live.
    assert sh(env, "batch.als.train", "--first-run") == ""

    # The gate: a crippled model (huge regularisation) is recorded rejected, nothing changes.
    bad = sh(env, "batch.als.train", "--params", '{"rank": 2, "max_iter": 1, "reg_param": 1000}',
             "--tolerance", "0")
    v_bad = bad.split()[0]
    assert bad.endswith(" rejected")
    assert live(env) == v1
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        status, metrics = conn.execute(
            "SELECT status, metrics FROM models WHERE version = %s", (v_bad,)
        ).fetchone()  # type: ignore[misc]
        assert status == "rejected"
        assert metrics["ndcg@10"] < metrics["live_ndcg@10"]
        assert conn.execute("SELECT DISTINCT model_version FROM movies").fetchall() == [(v1,)]

    # A second good model, published while a reader polls: never a mix of versions.
    v2 = sh(env, "batch.als.train", "--stage", "fit", "--params", FAST)
    gate = sh(env, "batch.als.train", "--stage", "evaluate", "--version", v2, "--tolerance", "1")
    assert gate == "candidate"
    seen: list[tuple[object, ...]] = []
    stop = threading.Event()

    def reader() -> None:
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            while not stop.is_set():
                seen.append(
                    conn.execute(
                        """
                        SELECT (SELECT count(DISTINCT model_version) FROM movies),
                               (SELECT min(model_version) FROM movies),
                               (SELECT count(DISTINCT model_version) FROM user_profiles),
                               (SELECT count(*) FROM models WHERE status = 'live'),
                               (SELECT version FROM models WHERE status = 'live')
                        """
                    ).fetchone()  # type: ignore[arg-type]
                )
                time.sleep(0.005)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        sh(env, "batch.als.train", "--stage", "publish", "--version", v2)
    finally:
        time.sleep(0.2)
        stop.set()
        thread.join()
    assert live(env) == v2
    for movies_versions, movies_version, user_versions, n_live, live_version in seen:
        assert movies_versions == 1 and user_versions == 1 and n_live == 1
        assert movies_version == live_version
    assert {row[4] for row in seen} == {v1, v2}, "the reader saw both sides of the switch"

    # The cache is invalidated by SCAN, other keys untouched.
    r = redis.Redis.from_url(env["REDIS_URL"])
    r.set(f"recs:v1:{BASE + 1}", b"x")
    r.set("other:key", b"y")
    sh(env, "batch.als.train", "--stage", "invalidate")
    assert r.get(f"recs:v1:{BASE + 1}") is None and r.get("other:key") == b"y"
    r.delete("other:key")

    # Rollback republishes v1 from its staged rows.
    assert sh(env, "batch.als.rollback") == f"{v2} -> {v1}"
    assert live(env) == v1
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT DISTINCT model_version FROM movies").fetchall() == [(v1,)]
        assert conn.execute("SELECT status FROM models WHERE version = %s", (v2,)).fetchone() == (
            "rejected",
        )


def test_archive_verified_delete_and_idempotent(batch_env: dict[str, str]) -> None:
    from batch.archive.job import archive, partition_path
    from batch.common.spark import build_session

    env = batch_env
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    rows = [(f"a-{i}", BASE + i % 3, BASE + i, "view", None, now - timedelta(days=3 + i % 2))
            for i in range(20)]
    rows += [(f"r-{i}", BASE + 1, BASE + i, "click", None, now - timedelta(hours=1)) for i in range(10)]
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        conn.execute("DELETE FROM rt_user_interactions")
        with conn.cursor().copy(
            "COPY rt_user_interactions (event_id, user_id, movie_id, event_type, rating, occurred_at)"
            " FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)

    def pg_count() -> int:
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            return conn.execute("SELECT count(*) FROM rt_user_interactions").fetchone()[0]  # type: ignore[index]

    spark = build_session("test-archive", master="local[1]")
    uri = env["ARCHIVE_URI"]
    dates = sorted({(now - timedelta(days=d)).date().isoformat() for d in (3, 4)})

    def archived_ids() -> list[str]:
        df = spark.read.parquet(*[partition_path(uri, d) for d in dates])
        return sorted(r.event_id for r in df.select("event_id").collect())

    try:
        results = archive(spark, env["DATABASE_URL"], uri, now=now + timedelta(hours=1))
        assert [r.extracted for r in results] == [20] and results[0].deleted == 20
        assert results[0].dates == dates
        assert pg_count() == 10
        assert archived_ids() == sorted(f"a-{i}" for i in range(20))
        # Re-running is harmless.
        assert archive(spark, env["DATABASE_URL"], uri, now=now + timedelta(hours=1)) == []
        # A run that wrote but died before deleting: the rows come back; no duplicates result.
        with psycopg.connect(env["DATABASE_URL"]) as conn, conn.cursor().copy(
            "COPY rt_user_interactions (event_id, user_id, movie_id, event_type, rating, occurred_at)"
            " FROM STDIN"
        ) as copy:
            for row in rows[:5]:
                copy.write_row(row)
        again = archive(spark, env["DATABASE_URL"], uri, now=now + timedelta(hours=1))
        assert [r.deleted for r in again] == [5]
        assert archived_ids() == sorted(f"a-{i}" for i in range(20))
        assert pg_count() == 10
    finally:
        spark.stop()


def test_publish_folds_in_users_with_a_history_the_model_did_not_train_on(
    batch_env: dict[str, str],
) -> None:
    """A user whose whole history is older than the training window (only in user_items) gets a
    vector of the published model: the fold-in over that history, not nothing."""
    from batch.als.publish import connect, staged_items, switch
    from batch.foldin import UserStep, gram

    env = batch_env
    version = live(env)
    assert version is not None, "run after the training test (a live model)"
    old_user, stranger = BASE + 9_000, BASE + 9_001
    movies = [BASE + m for m in range(MOVIES_PER_CLUSTER)][:6]  # cluster 0
    with connect(env["DATABASE_URL"]) as conn:
        ids, mat = staged_items(conn, version)
        conn.execute("DELETE FROM user_items WHERE user_id IN (%s, %s)", (old_user, stranger))
        for m in movies:
            conn.execute(
                "INSERT INTO user_items (user_id, movie_id, signal, events, ratings) "
                "VALUES (%s, %s, 5, 1, 1)",
                (old_user, m),
            )
        conn.execute(  # a movie the model has no factors for
            "INSERT INTO user_items (user_id, movie_id, signal, events) VALUES (%s, 987654321, 1, 1)",
            (stranger,),
        )
        conn.commit()
        assert switch(conn, version) == version
        rows = dict(
            conn.execute(
                "SELECT user_id, preference_vector FROM user_profiles WHERE user_id IN (%s, %s) "
                "AND model_version = %s",
                (old_user, stranger, version),
            ).fetchall()
        )
        params = conn.execute("SELECT params FROM models WHERE version = %s", (version,)).fetchone()[0]  # type: ignore[index]
    assert rows.get(stranger) is None, "no embedded movie in the history: no vector"
    got = np.asarray(rows[old_user].to_numpy(), dtype=np.float64)
    index = {int(m): i for i, m in enumerate(ids)}
    factors = mat.astype(np.float64)
    step = UserStep.of(params)
    expected = step.solve(
        factors[[index[m] for m in movies]], np.full(len(movies), 5.0), gram(factors), len(factors)
    )
    assert float(got @ expected / (np.linalg.norm(got) * np.linalg.norm(expected))) >= 0.999


def test_training_fits_a_cold_start_map_and_publish_keeps_cold_started_movies_embedded(
    batch_env: dict[str, str],
) -> None:
    """The trained version carries its genre/year map (recsys.coldstart). A movie served with a
    cold-start embedding that a published version did not learn gets one from that version's
    map, instead of losing it; a movie without any embedding stays without."""
    from batch.als.publish import connect, switch
    from recsys import coldstart

    env = batch_env
    version = live(env)
    assert version is not None, "run after the training test (a live model)"
    cold, bare = BASE + 9_100, BASE + 9_101
    with connect(env["DATABASE_URL"]) as conn:
        raw = conn.execute("SELECT cold_start FROM models WHERE version = %s", (version,)).fetchone()
        assert raw is not None and raw[0] is not None, "the trained version has no cold-start map"
        feature_map = coldstart.FeatureMap.from_json(raw[0])
        conn.execute("DELETE FROM movies WHERE movie_id IN (%s, %s)", (cold, bare))
        conn.execute(
            "INSERT INTO movies (movie_id, title, year, genres, embedding, model_version) "
            "VALUES (%s, 'cold', 1999, ARRAY['Drama'], %s, 'an-older-model'), "
            "(%s, 'bare', 1999, ARRAY['Drama'], NULL, NULL)",
            (cold, np.ones(64, dtype=np.float32), bare),
        )
        conn.commit()
        assert switch(conn, version) == version
        rows = dict(
            conn.execute(
                "SELECT movie_id, embedding FROM movies WHERE movie_id IN (%s, %s) AND model_version = %s",
                (cold, bare, version),
            ).fetchall()
        )
        conn.execute("DELETE FROM movies WHERE movie_id IN (%s, %s)", (cold, bare))
        conn.commit()
    assert rows[bare] is None
    np.testing.assert_allclose(
        np.asarray(rows[cold].to_numpy()), feature_map.embed(["Drama"], 1999), rtol=1e-5, atol=1e-6
    )
