"""Data access of the AnalyticsService: the window functions of migration 0008, read together.

The SQL of every figure lives in the database (the `analytics_*_since` functions), shared with
Grafana's SQL panels; this module only picks the windows and reads the rows. Everything is read
in one read-only REPEATABLE READ transaction, so the figures of one answer agree with each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

# At most this many models in the history (newest first).
MODEL_HISTORY_LIMIT = 50

_MODELS_SQL = """
SELECT version, status, created_at, published_at, ndcg_at_10, precision_at_10, recall_at_10,
       map_at_10, catalogue_coverage, popularity_ndcg_at_10
FROM analytics_model_quality ORDER BY created_at DESC, version DESC LIMIT $1
"""


@dataclass(frozen=True)
class Windows:
    """The dashboard's windows: the daily figures' [days_since, until) and the live figures'
    [recent_since, until)."""

    until: datetime
    days_since: datetime
    recent_since: datetime

    @classmethod
    def ending(cls, now: datetime, days: int, recent_minutes: int) -> Windows:
        """`days` whole days (UTC) up to `now`, today included; the last `recent_minutes`."""
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(
            until=now,
            days_since=today - timedelta(days=days - 1),
            recent_since=now - timedelta(minutes=recent_minutes),
        )

    @property
    def recent_seconds(self) -> float:
        return (self.until - self.recent_since).total_seconds()


@dataclass(frozen=True)
class Dashboard:
    """The rows of every figure, as the functions return them."""

    windows: Windows
    ctr_daily: list[asyncpg.Record]
    ctr_by_position: list[asyncpg.Record]
    coverage_daily: list[asyncpg.Record]
    coverage: asyncpg.Record
    tier_mix: list[asyncpg.Record]
    serve_latency: list[asyncpg.Record]
    models: list[asyncpg.Record]
    freshness: asyncpg.Record
    ingest: list[asyncpg.Record]
    experiment_ctr: list[asyncpg.Record]


async def read_dashboard(conn: asyncpg.Connection, windows: Windows) -> Dashboard:
    """Every figure over `windows`, on `conn`, which must be in a transaction."""
    # Days are UTC days, whatever the server's time zone.
    await conn.execute("SET LOCAL TIME ZONE 'UTC'")
    days: tuple[Any, ...] = (windows.days_since, windows.until)
    recent: tuple[Any, ...] = (windows.recent_since, windows.until)
    coverage = await conn.fetchrow("SELECT * FROM analytics_coverage_since($1, $2)", *days)
    freshness = await conn.fetchrow("SELECT * FROM analytics_freshness_since($1, $2)", *recent)
    assert coverage is not None and freshness is not None  # aggregates without GROUP BY: one row
    return Dashboard(
        windows=windows,
        ctr_daily=await conn.fetch(
            "SELECT * FROM analytics_ctr_daily_since($1, $2) ORDER BY day, tier", *days
        ),
        ctr_by_position=await conn.fetch(
            "SELECT * FROM analytics_ctr_by_position_since($1, $2) ORDER BY tier, position", *days
        ),
        coverage_daily=await conn.fetch(
            "SELECT * FROM analytics_coverage_daily_since($1, $2) ORDER BY day", *days
        ),
        coverage=coverage,
        tier_mix=await conn.fetch(
            "SELECT * FROM analytics_tier_mix_since($1, $2) ORDER BY serves DESC, tier", *days
        ),
        serve_latency=await conn.fetch(
            "SELECT * FROM analytics_serve_latency_since($1, $2) ORDER BY tier = 'all' DESC, tier", *days
        ),
        models=await conn.fetch(_MODELS_SQL, MODEL_HISTORY_LIMIT),
        freshness=freshness,
        ingest=await conn.fetch("SELECT * FROM analytics_ingest_since($1, $2) ORDER BY minute", *recent),
        experiment_ctr=await conn.fetch(
            "SELECT * FROM analytics_ctr_by_variant_since($1, $2) ORDER BY experiment, variant", *days
        ),
    )


class AnalyticsStore:
    """Reads the dashboard from the pool, windows ending at the database's clock."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def dashboard(self, days: int, recent_minutes: int) -> Dashboard:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            now = await conn.fetchval("SELECT now()")
            return await read_dashboard(conn, Windows.ending(now, days, recent_minutes))
