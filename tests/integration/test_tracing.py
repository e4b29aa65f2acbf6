"""Traces in Jaeger, against the real stack: Envoy, the three services, Kafka and the streaming
job export OTLP to the stack's Jaeger, and one request is one trace across them.

The tests send a W3C `traceparent` of their own with the sampled flag, as a client that wants a
trace does, so the stack's 1% head sampling does not decide for them; and they read the result
back through Jaeger's query API, as a person debugging would.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import redis

from recsys.cache import recommendations_key
from stack import supervisor
from stack.client import new_user_id
from tests.tokens import auth_headers

pytestmark = pytest.mark.stack

RECOMMEND = "recsys.v1.RecommenderService/GetRecommendations"
PREFERENCE = "recsys.v1.ProfileService/GetPreferenceVector"
POST_EVENT = "recsys.v1.EventService/PostEvent"


def traceparent(sampled: bool = True) -> tuple[str, str, str]:
    """(header value, trace id, parent span id) of a fresh trace."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}", trace_id, span_id


def call(stack: Any, method: str, path: str, header: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{stack.envoy_url}{path}",
        data=data,
        method=method,
        headers={"traceparent": header, "content-type": "application/json", **auth_headers()},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def jaeger(stack: Any, path: str) -> Any:
    url = f"http://127.0.0.1:{stack.env['JAEGER_QUERY_PORT']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def spans_of(stack: Any, trace_id: str) -> list[dict[str, Any]]:
    """The trace's spans, each with its service name under "service"; [] if Jaeger has none."""
    body = jaeger(stack, f"/api/traces/{trace_id}")
    spans: list[dict[str, Any]] = []
    for trace in (body or {}).get("data") or []:
        for span in trace["spans"]:
            spans.append({**span, "service": trace["processes"][span["processID"]]["serviceName"]})
    return spans


def wait_spans(stack: Any, trace_id: str, operations: set[str], timeout: float = 30) -> list[dict[str, Any]]:
    """Poll until the trace holds a span of every operation (exporters batch for up to ~5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = spans_of(stack, trace_id)
        if operations <= {s["operationName"] for s in spans} or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def one(spans: list[dict[str, Any]], service: str, operation: str | None = None) -> dict[str, Any]:
    found = [s for s in spans if s["service"] == service and operation in (None, s["operationName"])]
    assert len(found) == 1, f"{service} {operation}: {[(s['service'], s['operationName']) for s in spans]}"
    return found[0]


def parent_of(span: dict[str, Any]) -> str | None:
    refs = [r for r in span["references"] if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


def test_a_rest_call_is_one_trace_from_the_gateway_to_the_profile_service(stack: Any, db: Any) -> None:
    """Gateway span -> recommender server span -> its Profile client call -> Profile server span."""
    row = db.execute(
        "SELECT user_id FROM user_profiles WHERE preference_vector IS NOT NULL LIMIT 1"
    ).fetchone()
    assert row, "the demo data has users with preference vectors"
    user = row[0]
    redis.Redis.from_url(stack.redis_url).delete(recommendations_key(user))  # a miss asks Profile
    header, trace_id, client_span = traceparent()

    status, body = call(stack, "GET", f"/v1/users/{user}/recommendations?limit=5", header)
    assert status == 200, body

    spans = wait_spans(stack, trace_id, {"ingress", RECOMMEND, PREFERENCE})
    assert {s["traceID"] for s in spans} == {trace_id}
    gateway = one(spans, "recsys-gateway", "ingress")
    server = one(spans, "recommender-svc", RECOMMEND)
    profile = one(spans, "profile-svc", PREFERENCE)
    assert parent_of(gateway) == client_span
    assert parent_of(server) == gateway["spanID"]
    # The recommender's outgoing call is a client span between its server span and Profile's.
    by_id = {s["spanID"]: s for s in spans}
    client = by_id[parent_of(profile)]
    assert client["service"] == "recommender-svc"
    assert parent_of(client) == server["spanID"]
    assert tags(server)["rpc.grpc.status_code"] == 0
    assert tags(server)["request.id"] == next(
        t["value"] for t in gateway["tags"] if t["key"] == "guid:x-request-id"
    ), "the server span carries Envoy's request id, the one in the logs"


def test_the_callers_decision_holds_not_sampled_is_not_traced(stack: Any) -> None:
    dropped, dropped_id, _ = traceparent(sampled=False)
    kept, kept_id, _ = traceparent(sampled=True)
    assert call(stack, "GET", "/v1/movies?limit=3", dropped)[0] == 200
    assert call(stack, "GET", "/v1/movies?limit=3", kept)[0] == 200
    # Once the sampled request's spans are in, the other's would be too.
    assert wait_spans(stack, kept_id, {"ingress"}), "the sampled request was not traced"
    time.sleep(1)
    assert spans_of(stack, dropped_id) == []


def test_a_rejected_request_is_traced_with_its_status(stack: Any) -> None:
    header, trace_id, _ = traceparent()
    status, body = call(stack, "GET", "/v1/users/1/recommendations?limit=-1", header)
    assert status == 400, body

    server = one(wait_spans(stack, trace_id, {"ingress", RECOMMEND}), "recommender-svc", RECOMMEND)
    assert tags(server)["rpc.grpc.status_code"] == 3  # INVALID_ARGUMENT
    assert "error" not in tags(server), "a caller's mistake is not a server error"


def test_an_event_is_traced_through_kafka_to_the_streaming_batch(stack: Any, db: Any) -> None:
    """PostEvent's span is in the caller's trace; the micro-batch that stored the event is a
    trace of its own that links to it (and is sampled because of that link)."""
    movie = db.execute("SELECT movie_id FROM movies LIMIT 1").fetchone()[0]
    header, trace_id, _ = traceparent()

    event = {"userId": new_user_id(), "movieId": movie, "type": "EVENT_TYPE_VIEW"}
    status, body = call(stack, "POST", "/v1/events", header, event)
    assert status == 200, body

    posted = one(wait_spans(stack, trace_id, {"ingress", POST_EVENT}), "event-svc", POST_EVENT)
    assert parent_of(posted) == one(spans_of(stack, trace_id), "recsys-gateway")["spanID"]

    def linked_batch() -> dict[str, Any] | None:
        query = "service=streaming&operation=streaming.batch&lookback=10m&limit=200"
        found = jaeger(stack, f"/api/traces?{query}")
        for trace in (found or {}).get("data") or []:
            for span in trace["spans"]:
                if any(r["traceID"] == trace_id for r in span["references"]):
                    return dict(span)
        return None

    deadline = time.monotonic() + 45  # a few 5 s triggers and the exporter's batching
    batch = linked_batch()
    while batch is None and time.monotonic() < deadline:
        time.sleep(1)
        batch = linked_batch()
    assert batch is not None, "no streaming.batch span links the event's trace"
    link = next(r for r in batch["references"] if r["traceID"] == trace_id)
    assert link["spanID"] == posted["spanID"], "the Kafka header carried PostEvent's span"
    assert batch["traceID"] != trace_id


@pytest.mark.stack_restart
@pytest.mark.slow
def test_serving_does_not_wait_for_a_missing_jaeger(stack: Any, db: Any) -> None:
    """Spans leave in the background: with Jaeger stopped, sampled requests answer as fast as
    ever (the OTLP exporter retries for seconds, so a synchronous export would show), and once
    Jaeger is back new traces arrive again."""
    user = db.execute("SELECT user_id FROM user_profiles LIMIT 1").fetchone()[0]
    movie = db.execute("SELECT movie_id FROM movies LIMIT 1").fetchone()[0]
    rpc = supervisor.rpc(stack.cfg)
    rpc.supervisor.stopProcess("jaeger", True)
    try:
        slowest = 0.0
        for i in range(40):
            header = traceparent()[0]
            started = time.monotonic()
            if i % 4:
                status, body = call(stack, "GET", f"/v1/users/{user}/recommendations?limit=5", header)
            else:
                event = {"userId": new_user_id(), "movieId": movie, "type": "EVENT_TYPE_VIEW"}
                status, body = call(stack, "POST", "/v1/events", header, event)
            slowest = max(slowest, time.monotonic() - started)
            assert status == 200, body
        assert slowest < 1.0, f"a sampled request took {slowest:.2f}s with Jaeger down"
    finally:
        rpc.supervisor.startProcess("jaeger", True)

    deadline = time.monotonic() + 90  # the exporters back off while Jaeger was away
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        header, trace_id, _ = traceparent()
        assert call(stack, "GET", f"/v1/users/{user}/recommendations?limit=5", header)[0] == 200
        spans = wait_spans(stack, trace_id, {"ingress", RECOMMEND}, timeout=10)
        if {s["service"] for s in spans} >= {"recsys-gateway", "recommender-svc"}:
            break
    assert {s["service"] for s in spans} >= {"recsys-gateway", "recommender-svc"}, spans
