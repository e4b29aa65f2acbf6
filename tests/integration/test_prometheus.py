"""Issue #20, metrics: each service's /metrics (<SERVICE>_METRICS_PORT) after real traffic.

Calls go through Envoy; then each service's endpoint is scraped and parsed with
prometheus_client's own parser: the RPC histogram has the calls just made, by method and status
code (a refused call under its code), the recommender counts its answers by tier (a second GET
of the same user is a cache hit), and the event service times Kafka's acknowledgements.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.tokens import auth_headers

pytestmark = pytest.mark.stack


def _call(stack: Any, method: str, path: str, body: Any = None) -> int:
    req = urllib.request.Request(
        stack.envoy_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json", **auth_headers()},
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def _samples(stack: Any, port_key: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.env[port_key]}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    """The sum of `name` over the series whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_every_service_exposes_red_metrics_per_rpc(stack: Any) -> None:
    with psycopg.connect(stack.database_url) as conn:
        user = conn.execute(
            "SELECT user_id FROM user_profiles WHERE preference_vector IS NOT NULL LIMIT 1"
        ).fetchone()[0]
        movie = conn.execute("SELECT movie_id FROM movies ORDER BY movie_id LIMIT 1").fetchone()[0]
    before = {key: _samples(stack, key) for key in ("RECOMMENDER_METRICS_PORT", "EVENT_METRICS_PORT")}

    assert _call(stack, "GET", f"/v1/users/{user}/recommendations?limit=5") == 200
    assert _call(stack, "GET", f"/v1/users/{user}/recommendations?limit=5") == 200
    assert _call(stack, "GET", f"/v1/users/{user}/recommendations?limit=0") == 400
    assert _call(stack, "GET", f"/v1/users/{user}/profile") == 200
    newcomer = 4_000_000_000 + uuid.uuid4().int % 1_000_000_000
    event = {"userId": str(newcomer), "movieId": str(movie), "type": "EVENT_TYPE_VIEW"}
    assert _call(stack, "POST", "/v1/events", event) == 200

    rec = _samples(stack, "RECOMMENDER_METRICS_PORT")
    rpc = "recsys_rpc_server_handling_seconds_count"
    service = "recsys.v1.RecommenderService"
    gets = {"grpc_service": service, "grpc_method": "GetRecommendations"}
    old = before["RECOMMENDER_METRICS_PORT"]
    assert _value(rec, rpc, **gets, grpc_code="OK") - _value(old, rpc, **gets, grpc_code="OK") >= 2
    assert _value(rec, rpc, **gets, grpc_code="INVALID_ARGUMENT") >= 1
    buckets = [
        (dict(ls)["le"], v)
        for (n, ls), v in rec.items()
        if n == "recsys_rpc_server_handling_seconds_bucket" and {("grpc_code", "OK"), *gets.items()} <= ls
    ]
    assert len(buckets) > 5 and max(v for _, v in buckets) >= 2, "no latency histogram"
    hits = "recsys_recommendations_total"
    assert _value(rec, hits, tier="cache") - _value(old, hits, tier="cache") >= 1

    ev = _samples(stack, "EVENT_METRICS_PORT")
    old_ev = before["EVENT_METRICS_PORT"]
    posts = {"grpc_service": "recsys.v1.EventService", "grpc_method": "PostEvent", "grpc_code": "OK"}
    assert _value(ev, rpc, **posts) - _value(old_ev, rpc, **posts) >= 1
    produced = "recsys_kafka_produce_seconds_count"
    assert _value(ev, produced) - _value(old_ev, produced) >= 1
    assert _value(ev, "recsys_kafka_produced_events_total", outcome="acknowledged") >= 1

    prof = _samples(stack, "PROFILE_METRICS_PORT")
    assert (
        _value(prof, rpc, grpc_service="recsys.v1.ProfileService", grpc_method="GetProfile", grpc_code="OK")
        >= 1
    )


def test_the_streaming_job_exposes_its_batches_and_lag(stack: Any) -> None:
    """An event posted through Envoy shows up as a stored record and a timed micro-batch."""
    with psycopg.connect(stack.database_url) as conn:
        movie = conn.execute("SELECT movie_id FROM movies ORDER BY movie_id LIMIT 1").fetchone()[0]
    before = _samples(stack, "STREAMING_METRICS_PORT")
    user = 4_100_000_000 + uuid.uuid4().int % 1_000_000_000
    event = {"userId": str(user), "movieId": str(movie), "type": "EVENT_TYPE_VIEW"}
    assert _call(stack, "POST", "/v1/events", event) == 200

    stored = "recsys_streaming_records_total"
    deadline = time.monotonic() + 60  # a few triggers
    after = _samples(stack, "STREAMING_METRICS_PORT")
    while _value(after, stored, outcome="stored") <= _value(before, stored, outcome="stored"):
        assert time.monotonic() < deadline, "the stored event was never counted"
        time.sleep(0.5)
        after = _samples(stack, "STREAMING_METRICS_PORT")
    batches = "recsys_streaming_batch_seconds_count"
    assert _value(after, batches) > _value(before, batches)
    lag = [v for (n, _), v in after.items() if n == "recsys_streaming_consumer_lag_records"]
    assert lag and lag[0] >= 0


def _envoy_stats(stack: Any, path: str = "/stats/prometheus", method: str = "GET") -> tuple[int, str]:
    url = f"http://127.0.0.1:{stack.env['ENVOY_METRICS_PORT']}{path}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_envoy_stats_are_scrapable_and_nothing_else_of_the_admin(stack: Any) -> None:
    """The metrics listener serves the admin's /stats/prometheus (what compose's Prometheus
    scrapes); the admin's other endpoints (which change or stop Envoy) are not there."""

    def recommender_requests() -> float:
        status, text = _envoy_stats(stack)
        assert status == 200, text[:500]
        samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        return _value(samples, "envoy_cluster_upstream_rq_total", envoy_cluster_name="recommender")

    before = recommender_requests()
    for _ in range(3):
        assert _call(stack, "GET", f"/v1/users/{930_000_777}/recommendations?limit=3") == 200
    assert recommender_requests() >= before + 3
    for path, method in [("/quitquitquit", "POST"), ("/runtime_modify", "POST"), ("/stats", "GET"),
                         ("/stats/prometheus", "POST")]:  # fmt: skip
        status, _ = _envoy_stats(stack, path, method)
        assert status == 404, (path, method)
