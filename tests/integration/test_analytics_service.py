"""The AnalyticsService through the gateway: who may read it, and real traffic shows up in it.

Serves and clicks go through Envoy as a client's would (REST); the dashboard is read before and
after, and today's figures must have moved by exactly that traffic (the stack runs nothing
else that serves while a test runs). The figures' arithmetic over inserted rows is
test_analytics.py's.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import grpc
import psycopg
import pytest

from recsys.v1 import analytics_service_pb2, analytics_service_pb2_grpc
from stack.client import new_user_id, post_event, recommendations, wait_for
from tests.tokens import admin_token, analyst_token, bearer, service_token, user_token

pytestmark = pytest.mark.stack


def dashboard(stack: Any, token: str | None, query: str = "days=1&recentMinutes=10") -> tuple[int, Any]:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    req = urllib.request.Request(f"{stack.envoy_url}/v1/analytics/dashboard?{query}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.mark.parametrize(
    ("who", "status"),
    [("nobody", 401), ("user", 403), ("service", 403), ("analyst", 200), ("admin", 200)],
)
def test_only_analysts_and_admins_read_the_analytics(stack: Any, who: str, status: int) -> None:
    token = {
        "nobody": None,
        "user": user_token(42),
        "service": service_token(),
        "analyst": analyst_token(),
        "admin": admin_token(),
    }[who]
    got, body = dashboard(stack, token)
    assert got == status, body


def test_bad_windows_are_refused_naming_the_field(stack: Any) -> None:
    got, body = dashboard(stack, analyst_token(), "days=91")
    assert got == 400 and body["message"].startswith("days:"), body
    with grpc.insecure_channel(stack.envoy_grpc_addr) as channel:
        stub = analytics_service_pb2_grpc.AnalyticsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.GetDashboard(
                analytics_service_pb2.GetDashboardRequest(recent_minutes=0),
                metadata=bearer(analyst_token()),
                timeout=10,
            )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("recent_minutes:"), err.value.details()


def logged(db: psycopg.Connection[Any], request_ids: list[str]) -> int:
    """How many of these serves are in recommendation_logs (written off the serving path)."""
    row = db.execute(
        "SELECT count(*) FROM recommendation_logs WHERE request_id = ANY(%s)", (request_ids,)
    ).fetchone()
    return int(row[0]) if row else 0


def _today(body: dict[str, Any], tier: str) -> dict[str, int]:
    """Today's serves, impressions and clicks of `tier` (the last day of a days=1 answer)."""
    rows = [r for r in body["ctrDaily"] if r["tier"] == tier]
    row = rows[-1] if rows else {}
    return {k: int(row.get(k, 0)) for k in ("serves", "impressions", "clicks")}


def test_real_serves_and_clicks_show_up_in_the_dashboard(
    stack: Any, db: psycopg.Connection[Any], trigger_seconds: float
) -> None:
    user = new_user_id()
    # The first serve caches the list, so the two below are the same tier (the cache's).
    first = recommendations(stack.envoy_url, user, limit=5)
    assert wait_for(lambda: logged(db, [first["requestId"]]) == 1, 10)
    status, before = dashboard(stack, analyst_token())
    assert status == 200, before

    lists = [recommendations(stack.envoy_url, user, limit=5) for _ in range(2)]
    served = [[int(i["movie"]["movieId"]) for i in r["items"]] for r in lists]
    assert lists[0]["tier"] == lists[1]["tier"], [r["tier"] for r in lists]
    tier = lists[0]["tier"].removeprefix("TIER_").lower()
    unserved = db.execute(
        "SELECT movie_id FROM movies WHERE NOT movie_id = ANY(%s) LIMIT 1", (served[1],)
    ).fetchone()[0]
    clicks = [  # (list, movie): two clicks on served movies, one on a movie list 2 did not hold
        (0, served[0][0]),
        (0, served[0][2]),
        (1, unserved),
    ]
    event_ids = []
    for n, movie in clicks:
        event_id = f"an-{uuid.uuid4().hex}"
        event_ids.append(event_id)
        status, body = post_event(
            stack.envoy_url,
            eventId=event_id,
            userId=user,
            movieId=movie,
            type="EVENT_TYPE_CLICK",
            requestId=lists[n]["requestId"],
        )
        assert status == 200, body
    # The speed layer writes the feedback (with its position) and the serve log lands on its own.
    written = wait_for(
        lambda: db.execute(
            "SELECT count(*) FROM recommendation_feedback WHERE event_id = ANY(%s)", (event_ids,)
        ).fetchone()[0]
        == 3
        and logged(db, [r["requestId"] for r in lists]) == 2,
        3 * trigger_seconds + 10,
    )
    assert written, "the feedback and serve logs were not written"

    status, after = dashboard(stack, analyst_token())
    assert status == 200, after
    was, now = _today(before, tier), _today(after, tier)
    assert now["serves"] - was["serves"] == 2
    assert now["impressions"] - was["impressions"] == sum(len(s) for s in served)
    assert now["clicks"] - was["clicks"] == 2  # the click on an unserved movie is not one
    mix = {t["tier"]: int(t["serves"]) for t in after["tierMix"]}
    assert mix[tier] >= now["serves"]
    assert int(after["coverage"]["moviesServed"]) >= len(set(served[0]) | set(served[1]))
    latency = {s["tier"]: s for s in after["serveLatency"]}
    assert int(latency["all"]["serves"]) >= 3 and latency[tier]["p99Ms"] >= latency[tier]["p50Ms"] > 0
    # The three click events went through the speed layer within the recent window.
    assert int(after["ingest"]["events"]) >= 3
    assert int(after["freshness"]["events"]) >= 3 and after["freshness"]["p95Seconds"] > 0
    assert after["models"], "make up trains a first model"
    assert any(m["status"] == "live" for m in after["models"])
