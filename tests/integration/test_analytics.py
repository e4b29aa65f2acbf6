"""The dashboard's views and window functions (migration 0008) compute CTR, coverage, tier mix,
latency, freshness, ingest and model quality from the real tables."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from profile_svc.analytics import dashboard_message
from profile_svc.analytics_store import Windows, read_dashboard

pytestmark = pytest.mark.stack

USER = 930_000_001


@pytest.fixture
async def conn(stack) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(stack.database_url)
    # Everything runs in a transaction that is rolled back, so the shared database and
    # the other tests never see these rows.
    tx = connection.transaction()
    await tx.start()
    try:
        yield connection
    finally:
        await tx.rollback()
        await connection.close()


async def test_ctr_counts_clicked_impressions_per_tier(conn: asyncpg.Connection) -> None:
    day = datetime(2001, 1, 1, 12, tzinfo=UTC)
    served = {f"t-{uuid.uuid4().hex}": ("realtime", [1, 2, 3, 4]) for _ in range(2)}
    served[f"t-{uuid.uuid4().hex}"] = ("popular", [5, 6])
    for request_id, (tier, movies) in served.items():
        await conn.execute(
            "INSERT INTO recommendation_logs (request_id, user_id, tier, movie_ids, scores, served_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            request_id, USER, tier, movies, [0.0] * len(movies), day,
        )
    realtime = [r for r, (t, _) in served.items() if t == "realtime"]
    # Two clicks on one realtime list (one item clicked twice counts once), a view ignored, and
    # a click on a movie the list did not hold (no position) ignored.
    for i, (movie, kind) in enumerate([(1, "click"), (1, "watch"), (2, "like"), (3, "view"), (9, "click")]):
        await conn.execute(
            "INSERT INTO recommendation_feedback (event_id, request_id, user_id, movie_id, event_type,"
            " position, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            f"fb-{uuid.uuid4().hex}-{i}", realtime[0], USER, movie, kind, movie if movie < 9 else None, day,
        )
    rows = {
        r["tier"]: r
        for r in await conn.fetch(
            "SELECT * FROM analytics_ctr_daily WHERE day = date_trunc('day', $1::timestamptz)", day
        )
    }
    assert rows["realtime"]["impressions"] == 8
    assert rows["realtime"]["clicks"] == 2
    assert rows["realtime"]["ctr"] == pytest.approx(2 / 8)
    assert rows["realtime"]["serve_ctr"] == pytest.approx(1 / 2)
    assert rows["popular"]["clicks"] == 0
    assert rows["popular"]["ctr"] == 0


async def test_coverage_is_share_of_catalogue_served(conn: asyncpg.Connection) -> None:
    day = datetime(2001, 2, 1, 8, tzinfo=UTC)
    catalogue = await conn.fetchval("SELECT count(*) FROM movies")
    assert catalogue > 0, "the stack loads a demo catalogue"
    movies = [r["movie_id"] for r in await conn.fetch("SELECT movie_id FROM movies LIMIT 3")]
    for ids in (movies[:2], movies[1:]):
        await conn.execute(
            "INSERT INTO recommendation_logs (request_id, user_id, tier, movie_ids, scores, served_at)"
            " VALUES ($1, $2, 'batch', $3, $4, $5)",
            f"c-{uuid.uuid4().hex}", USER, ids, [0.0] * len(ids), day,
        )
    row = await conn.fetchrow(
        "SELECT * FROM analytics_coverage_daily WHERE day = date_trunc('day', $1::timestamptz)", day
    )
    assert row["movies_served"] == 3
    assert row["coverage"] == pytest.approx(3 / catalogue)


async def test_model_quality_exposes_stored_metrics(conn: asyncpg.Connection) -> None:
    version = f"test-{uuid.uuid4().hex[:8]}"
    await conn.execute(
        "INSERT INTO models (version, status, metrics) VALUES ($1, 'rejected', $2::jsonb)",
        version, '{"rmse": 0.91, "ndcg@10": 0.42, "coverage@10": 0.3}',
    )
    row = await conn.fetchrow("SELECT * FROM analytics_model_quality WHERE version = $1", version)
    assert row["ndcg_at_10"] == pytest.approx(0.42)
    assert row["catalogue_coverage"] == pytest.approx(0.3)
    # The explicit-rating model's RMSE is not the served model's: the dashboard has none.
    assert "rmse" not in row.keys()


async def test_dashboard_figures_over_a_window(conn: asyncpg.Connection) -> None:
    """Every figure of the AnalyticsService's answer, from rows inserted in a past window (so the
    stack's own traffic is outside it) and shaped as the service answers them."""
    until = datetime(2001, 3, 10, 12, tzinfo=UTC)
    windows = Windows.ending(until, days=3, recent_minutes=60)
    assert windows.days_since == datetime(2001, 3, 8, tzinfo=UTC)
    m = [r["movie_id"] for r in await conn.fetch("SELECT movie_id FROM movies ORDER BY movie_id LIMIT 9")]
    catalogue = await conn.fetchval("SELECT count(*) FROM movies")
    serves = {  # request -> (tier, movies, served_at, latency_ms)
        "r1": ("realtime", m[0:4], datetime(2001, 3, 9, 10, tzinfo=UTC), 5.0),
        "r2": ("realtime", [m[0], m[4]], datetime(2001, 3, 10, 9, tzinfo=UTC), 7.0),
        "r3": ("popular", m[5:8], datetime(2001, 3, 10, 10, tzinfo=UTC), 1.0),
        "old": ("batch", [m[8]], datetime(2001, 3, 7, 23, tzinfo=UTC), 100.0),  # before the window
        "late": ("batch", [m[8]], until, 100.0),  # at its end (exclusive)
    }
    rid = {name: f"w-{name}-{uuid.uuid4().hex}" for name in serves}
    for name, (tier, movies, at, ms) in serves.items():
        await conn.execute(
            "INSERT INTO recommendation_logs (request_id, user_id, tier, movie_ids, scores, served_at,"
            " latency_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            rid[name], USER, tier, movies, [0.0] * len(movies), at, ms,
        )
    feedback = [  # (request, movie, type, position)
        ("r1", m[0], "click", 1),
        ("r1", m[0], "watch", 1),  # the same served movie again: one click
        ("r1", m[2], "like", 3),
        ("r1", m[1], "view", 2),  # not a click
        ("r1", m[3], "dislike", 4),  # answers the list, not a click
        ("r1", m[8], "click", None),  # a movie the list did not hold
        ("r3", m[6], "rate", 2),
        ("old", m[8], "click", 1),  # outside the window
    ]
    for i, (name, movie, kind, position) in enumerate(feedback):
        await conn.execute(
            "INSERT INTO recommendation_feedback (event_id, request_id, user_id, movie_id, event_type,"
            " position, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            f"wf-{uuid.uuid4().hex}-{i}", rid[name], USER, movie, kind, position, until,
        )
    # Events: (seconds from occurring to the profile rewrite, ingested at)
    events = [
        (2.0, datetime(2001, 3, 10, 11, 30, 5, tzinfo=UTC)),
        (4.0, datetime(2001, 3, 10, 11, 30, 40, tzinfo=UTC)),
        (10.0, datetime(2001, 3, 10, 11, 45, tzinfo=UTC)),
        (500.0, datetime(2001, 3, 10, 10, 59, tzinfo=UTC)),  # before the recent window
        (30 * 86400.0, datetime(2001, 3, 10, 11, 50, tzinfo=UTC)),  # history imported now: old, not late
    ]
    for i, (delay, at) in enumerate(events):
        await conn.execute(
            "INSERT INTO rt_user_interactions (event_id, user_id, movie_id, event_type, occurred_at,"
            " ingested_at) VALUES ($1, $2, $3, 'click', $4, $5)",
            f"we-{uuid.uuid4().hex}-{i}", USER, m[0], at - timedelta(seconds=delay), at,
        )
    version = f"test-{uuid.uuid4().hex[:8]}"
    await conn.execute(
        "INSERT INTO models (version, status, metrics, created_at) VALUES ($1, 'candidate', $2::jsonb,"
        " now() + interval '1 minute')",
        version, '{"ndcg@10": 0.25, "precision@10": 0.125, "popularity_ndcg@10": 0.1, "rmse": 0.9}',
    )

    d = dashboard_message(await read_dashboard(conn, windows))

    assert d.days == 3 and d.recent_minutes == 60
    ctr = {(c.day.ToDatetime(tzinfo=UTC).day, c.tier): c for c in d.ctr_daily}
    assert set(ctr) == {(9, "realtime"), (10, "realtime"), (10, "popular")}
    assert (ctr[9, "realtime"].serves, ctr[9, "realtime"].impressions, ctr[9, "realtime"].clicks) == (1, 4, 2)
    assert ctr[9, "realtime"].ctr == pytest.approx(2 / 4)
    assert ctr[9, "realtime"].serve_ctr == pytest.approx(1.0)
    assert (ctr[10, "realtime"].impressions, ctr[10, "realtime"].clicks) == (2, 0)
    assert (ctr[10, "popular"].impressions, ctr[10, "popular"].clicks) == (3, 1)
    by_position = {(p.tier, p.position): (p.impressions, p.clicks) for p in d.ctr_by_position}
    assert by_position == {
        ("realtime", 1): (2, 1), ("realtime", 2): (2, 0), ("realtime", 3): (1, 1), ("realtime", 4): (1, 0),
        ("popular", 1): (1, 0), ("popular", 2): (1, 1), ("popular", 3): (1, 0),
    }  # fmt: skip
    assert [(c.day.ToDatetime().day, c.movies_served) for c in d.coverage_daily] == [(9, 4), (10, 5)]
    assert d.coverage_daily[0].coverage == pytest.approx(4 / catalogue)
    assert (d.coverage.movies_served, d.coverage.catalogue) == (8, catalogue)
    assert d.coverage.coverage == pytest.approx(8 / catalogue)
    assert [(t.tier, t.serves) for t in d.tier_mix] == [("realtime", 2), ("popular", 1)]
    assert d.tier_mix[0].share == pytest.approx(2 / 3)
    latency = {s.tier: s for s in d.serve_latency}
    assert d.serve_latency[0].tier == "all"
    assert (latency["all"].serves, latency["all"].p50_ms) == (3, pytest.approx(5.0))
    assert latency["all"].p99_ms == pytest.approx(5.0 + 0.98 * 2.0)  # interpolated in [1, 5, 7]
    assert latency["realtime"].p50_ms == pytest.approx(6.0)
    assert latency["popular"].p99_ms == pytest.approx(1.0)
    assert d.freshness.events == 3
    assert d.freshness.p50_seconds == pytest.approx(4.0)
    assert d.freshness.p95_seconds == pytest.approx(4.0 + 0.9 * 6.0)
    assert d.ingest.events == 4  # the import is ingest, though not a freshness delay
    assert d.ingest.events_per_second == pytest.approx(4 / 3600)
    per_minute = [(b.minute.ToDatetime().minute, b.events) for b in d.ingest.per_minute]
    assert per_minute == [(30, 2), (45, 1), (50, 1)]
    model = d.models[0]
    assert (model.version, model.status) == (version, "candidate")
    assert model.ndcg_at_10 == pytest.approx(0.25) and model.precision_at_10 == pytest.approx(0.125)
    assert model.popularity_ndcg_at_10 == pytest.approx(0.1)
    assert not model.HasField("recall_at_10") and not model.HasField("published_at")
