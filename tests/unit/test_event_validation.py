"""EventService request validation (the protos' rules and the clock's) and the Kafka record a
valid request becomes."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from event_svc.events import SCHEMA_VERSION, Event, clock_violations, to_event
from recsys.v1 import event_service_pb2 as pb
from recsys.validation import violations

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _ts(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def _check(**fields: object) -> tuple[Event | None, list[str]]:
    """What the Event service does with a request: the protos' rules (the interceptor, or
    PostEvents per event), the clock's, then the record."""
    base: dict[str, object] = {"user_id": 1, "movie_id": 2, "type": pb.EVENT_TYPE_CLICK}
    base.update(fields)
    request = pb.PostEventRequest(**base)
    bad = [v.field for v in violations(request) + clock_violations(request, NOW)]
    return (None if bad else to_event(request, NOW)), bad


def test_valid_click_gets_an_id_and_now() -> None:
    event, bad = _check(request_id="r1")
    assert bad == []
    assert event is not None
    assert len(event.event_id) == 36
    assert event.occurred_at_ms == int(NOW.timestamp() * 1000)
    value = json.loads(event.value())
    assert value["schema"] == SCHEMA_VERSION
    assert value["event_type"] == "click" and value["rating"] is None and value["request_id"] == "r1"
    assert event.key() == b"1"


def test_valid_rating_keeps_client_id() -> None:
    event, bad = _check(type=pb.EVENT_TYPE_RATE, rating=4.5, event_id="abc-1")
    assert bad == [] and event is not None
    assert event.event_id == "abc-1" and event.rating == 4.5 and event.event_type == "rate"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"user_id": 0}, "user_id"),
        ({"user_id": -3}, "user_id"),
        ({"movie_id": 0}, "movie_id"),
        ({"type": pb.EVENT_TYPE_UNSPECIFIED}, "type"),
        ({"type": 42}, "type"),
        ({"type": pb.EVENT_TYPE_RATE}, "rating"),
        ({"type": pb.EVENT_TYPE_RATE, "rating": 5.5}, "rating"),
        ({"type": pb.EVENT_TYPE_RATE, "rating": 0.0}, "rating"),
        ({"type": pb.EVENT_TYPE_RATE, "rating": float("nan")}, "rating"),
        ({"type": pb.EVENT_TYPE_CLICK, "rating": 3.0}, "rating"),
        ({"occurred_at": _ts(NOW + timedelta(minutes=5))}, "occurred_at"),
        ({"occurred_at": _ts(NOW - timedelta(days=3))}, "occurred_at"),
        ({"event_id": "x" * 65}, "event_id"),
        ({"event_id": "has space"}, "event_id"),
        ({"request_id": "r" * 129}, "request_id"),
    ],
)
def test_each_bad_field_is_named(fields: dict[str, object], field: str) -> None:
    event, bad = _check(**fields)
    assert event is None
    assert set(bad) == {field}


def test_all_bad_fields_named_at_once() -> None:
    _, bad = _check(user_id=0, movie_id=0, type=pb.EVENT_TYPE_VIEW, rating=3.0)
    assert sorted(bad) == ["movie_id", "rating", "user_id"]


def test_small_clock_skew_is_clamped_to_now() -> None:
    event, bad = _check(occurred_at=_ts(NOW + timedelta(seconds=10)))
    assert bad == [] and event is not None
    assert event.occurred_at_ms == int(NOW.timestamp() * 1000)


def test_past_timestamp_is_kept() -> None:
    past = NOW - timedelta(hours=1)
    event, _ = _check(occurred_at=_ts(past))
    assert event is not None and event.occurred_at_ms == int(past.timestamp() * 1000)


def test_a_backfill_may_carry_any_age() -> None:
    """max_age=None is what a service caller gets (event_svc.servicer): a replay keeps its times."""
    old = datetime(1998, 4, 1, 12, 0, tzinfo=UTC)
    request = pb.PostEventRequest(user_id=1, movie_id=2, type=pb.EVENT_TYPE_CLICK, occurred_at=_ts(old))
    assert [v.field for v in clock_violations(request, NOW)] == ["occurred_at"]
    assert clock_violations(request, NOW, max_age=None) == []
    assert to_event(request, NOW).occurred_at_ms == int(old.timestamp() * 1000)
