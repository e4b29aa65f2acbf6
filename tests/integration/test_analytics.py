"""The dashboard's views compute CTR, coverage and model quality from the real tables."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

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
    # Two clicks on one realtime list (one item clicked twice counts once), a view ignored.
    for i, (movie, kind) in enumerate([(1, "click"), (1, "watch"), (2, "like"), (3, "view")]):
        await conn.execute(
            "INSERT INTO recommendation_feedback (event_id, request_id, user_id, movie_id, event_type,"
            " position, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            f"fb-{uuid.uuid4().hex}-{i}", realtime[0], USER, movie, kind, movie - 1, day,
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
    assert row["rmse"] == pytest.approx(0.91)
    assert row["ndcg_at_10"] == pytest.approx(0.42)
    assert row["catalogue_coverage"] == pytest.approx(0.3)
