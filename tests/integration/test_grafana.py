"""grafana/dashboards/recsys.json against the real stack.

Each SQL panel's query runs against the real database, with Grafana's time macros expanded as
Grafana expands them, over a past window holding rows this test inserts (in a transaction that
is rolled back): every query must run, answer with a row, and have a `time` column when Grafana
reads it as a time series. Each Prometheus panel may only name series that the running services
and Envoy really expose (a typo would draw an empty panel, silently).
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from stack.client import http, new_user_id, post_event, recommendations

pytestmark = pytest.mark.stack

DASHBOARD = Path(__file__).resolve().parents[2] / "grafana" / "dashboards" / "recsys.json"
FROM = datetime(2001, 4, 1, tzinfo=UTC)
TO = datetime(2001, 4, 8, tzinfo=UTC)
USER = 930_000_002


def panels(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) of every query of a datasource type ('postgres' or 'prometheus')."""
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            ds = (target.get("datasource") or panel["datasource"])["type"]
            if kind in ds:
                found.append((panel["title"], target))
    return found


def grafana_sql(raw: str, start: datetime, end: datetime) -> str:
    """Grafana's PostgreSQL macros, expanded the way Grafana expands them."""
    a, b = (f"'{t.strftime('%Y-%m-%dT%H:%M:%SZ')}'" for t in (start, end))
    raw = re.sub(r"\$__timeFilter\((\w+)\)", lambda m: f"{m[1]} BETWEEN {a} AND {b}", raw)
    return raw.replace("$__timeFrom()", a).replace("$__timeTo()", b)


def test_expansion_of_the_macros() -> None:
    sql = grafana_sql("x WHERE $__timeFilter(day) AND f($__timeFrom(), $__timeTo())", FROM, TO)
    assert sql == (
        "x WHERE day BETWEEN '2001-04-01T00:00:00Z' AND '2001-04-08T00:00:00Z' "
        "AND f('2001-04-01T00:00:00Z', '2001-04-08T00:00:00Z')"
    )
    assert "$__" not in "".join(grafana_sql(t["rawSql"], FROM, TO) for _, t in panels("postgres"))


@pytest.fixture
async def conn(stack) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(stack.database_url)
    tx = connection.transaction()
    await tx.start()
    try:
        yield connection
    finally:
        await tx.rollback()
        await connection.close()


async def _seed(conn: asyncpg.Connection, at: datetime) -> None:
    """A serve with a click on its first movie, an event applied 3 s after it happened, a model."""
    movies = [r["movie_id"] for r in await conn.fetch("SELECT movie_id FROM movies LIMIT 3")]
    request_id = f"g-{uuid.uuid4().hex}"
    await conn.execute(
        "INSERT INTO recommendation_logs (request_id, user_id, tier, movie_ids, scores, served_at,"
        " latency_ms) VALUES ($1, $2, 'realtime', $3, $4, $5, 4.0)",
        request_id, USER, movies, [0.0] * len(movies), at,
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO recommendation_feedback (event_id, request_id, user_id, movie_id, event_type, position,"
        " occurred_at) VALUES ($1, $2, $3, $4, 'click', 1, $5)",
        f"g-{uuid.uuid4().hex}", request_id, USER, movies[0], at,
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO rt_user_interactions (event_id, user_id, movie_id, event_type, occurred_at, ingested_at)"
        " VALUES ($1, $2, $3, 'click', $4, $5)",
        f"g-{uuid.uuid4().hex}", USER, movies[0], at - timedelta(seconds=3), at,
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO models (version, status, metrics, created_at) VALUES ($1, 'rejected', $2::jsonb, $3)",
        f"test-{uuid.uuid4().hex[:8]}", '{"ndcg@10": 0.2, "popularity_ndcg@10": 0.1}', at,
    )


async def test_every_sql_panel_runs_against_the_real_schema(conn: asyncpg.Connection) -> None:
    queries = panels("postgres")
    assert len(queries) >= 8
    await _seed(conn, FROM + timedelta(days=2))
    # The freshness panel reads the last hour of the real clock, not the dashboard's range.
    await _seed(conn, await conn.fetchval("SELECT now() - interval '1 minute'"))
    for title, target in queries:
        rows = await conn.fetch(grafana_sql(target["rawSql"], FROM, TO))
        assert rows, f"{title}: no rows over a window with data"
        if target["format"] == "time_series":
            assert next(iter(rows[0].keys())) == "time", title
    models = [t for title, t in queries if "rmse" in t["rawSql"].lower()]
    assert not models, "RMSE is of a model that is never served: not on the dashboard"


def _exposed(url: str) -> set[str]:
    """The series names of a scrape as Prometheus stores them: as written (prometheus_client's
    parser would add `_total` to a counter that lacks it, as Envoy's do)."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return set(re.findall(r"^([a-zA-Z_:][\w:]*)[{ ]", text, re.M))


def test_every_prometheus_panel_names_series_that_exist(stack: Any) -> None:
    # Traffic through Envoy, so every labelled series exists: a serve (answers by tier), an event
    # (Kafka produce), a profile read (the profile service's RPCs).
    user = new_user_id()
    movie = recommendations(stack.envoy_url, user, limit=1)["items"][0]["movie"]["movieId"]
    assert post_event(stack.envoy_url, userId=user, movieId=movie, type="EVENT_TYPE_VIEW")[0] == 200
    assert http("GET", f"{stack.envoy_url}/v1/users/{user}/profile")[0] in (200, 404)
    exposed = _exposed(f"http://127.0.0.1:{stack.env['ENVOY_METRICS_PORT']}/stats/prometheus")
    for key in ("RECOMMENDER_METRICS_PORT", "EVENT_METRICS_PORT", "PROFILE_METRICS_PORT"):
        exposed |= _exposed(f"http://127.0.0.1:{stack.env[key]}/metrics")
    queries = panels("prometheus")
    assert len(queries) >= 6
    for title, target in queries:
        # series are followed by a selector or a range ({...} or [5m]); labels are not
        names = set(re.findall(r"\b((?:recsys|envoy)_\w+)\s*[{\[]", target["expr"]))
        assert names, title
        assert names <= exposed, f"{title}: {sorted(names - exposed)} not exposed"
