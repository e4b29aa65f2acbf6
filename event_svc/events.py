"""The event record on the wire (Kafka value) and the validation that produces it.

Kafka value: one JSON object per event, `{"schema": 1, "event_id": ..., "user_id": ...,
"movie_id": ..., "event_type": "rate", "rating": 4.5 | null, "request_id": "..." | null,
"occurred_at_ms": <epoch millis>}`. The key is the user id (decimal ASCII), so one user's
events stay ordered in one partition. Readers must check `schema`; adding an optional
field keeps the version, anything else bumps it.

Validation decisions:
- `rating` is required for EVENT_TYPE_RATE (0.5..5) and rejected for every other type,
  so a client bug never slips a meaningless number into the data.
- `occurred_at` defaults to now; up to MAX_CLOCK_SKEW in the future is accepted (client
  clocks drift) and clamped to now; more is rejected. Older than MAX_AGE is rejected too:
  the speed layer only holds a short window.
- `event_id` is at most 64 characters of [A-Za-z0-9._:-]; a UUID4 is assigned when empty.
  A client that retries with the same id is harmless (the sink is idempotent on it).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from recsys.domain.events import EVENT_TYPE_NAMES, MAX_EVENT_ID_LEN, RATING_MAX, RATING_MIN, SCHEMA_VERSION
from recsys.v1 import event_service_pb2 as pb
from recsys.validation import Checks

MAX_REQUEST_ID_LEN = 128
MAX_CLOCK_SKEW = timedelta(seconds=30)
MAX_AGE = timedelta(days=2)

_EVENT_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]+$")
_ENCODER = json.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True)
class Event:
    """A validated event, as produced to Kafka."""

    event_id: str
    user_id: int
    movie_id: int
    event_type: str
    rating: float | None
    request_id: str | None
    occurred_at_ms: int
    schema: int = SCHEMA_VERSION

    def key(self) -> bytes:
        return str(self.user_id).encode()

    def value(self) -> bytes:
        # The fields in declaration order (what json.dumps(asdict(self)) wrote), without asdict's
        # deep copy: it was most of PostEvents' CPU (bench/ingest.py).
        return _ENCODER.encode(
            {
                "event_id": self.event_id,
                "user_id": self.user_id,
                "movie_id": self.movie_id,
                "event_type": self.event_type,
                "rating": self.rating,
                "request_id": self.request_id,
                "occurred_at_ms": self.occurred_at_ms,
                "schema": self.schema,
            }
        ).encode()


def check_request(request: pb.PostEventRequest, check: Checks, now: datetime) -> Event | None:
    """Validate every field that needs no lookup; returns the event when nothing failed.

    The caller adds the catalogue check for `movie_id` to the same `check` and calls
    `check.done()`, so one answer names every bad field.
    """
    check.positive("user_id", request.user_id)
    check.positive("movie_id", request.movie_id)

    event_type = EVENT_TYPE_NAMES.get(request.type)
    if event_type is None:
        check.fail("type", f"must be one of {', '.join(pb.EventType.keys()[1:])}, got {request.type}")

    rating: float | None = None
    if request.HasField("rating"):
        if request.type != pb.EVENT_TYPE_RATE:
            check.fail("rating", "is only allowed with EVENT_TYPE_RATE")
        else:
            rating = float(request.rating)
            check.in_range("rating", rating, RATING_MIN, RATING_MAX)
    elif request.type == pb.EVENT_TYPE_RATE:
        check.fail("rating", "is required with EVENT_TYPE_RATE")

    occurred = now
    if request.HasField("occurred_at"):
        occurred = request.occurred_at.ToDatetime(tzinfo=UTC)
        if occurred > now + MAX_CLOCK_SKEW:
            check.fail("occurred_at", f"is in the future ({occurred.isoformat()})")
        elif occurred < now - MAX_AGE:
            check.fail("occurred_at", f"is older than {MAX_AGE.days} days ({occurred.isoformat()})")
        occurred = min(occurred, now)

    event_id = request.event_id or str(uuid.uuid4())
    if len(event_id) > MAX_EVENT_ID_LEN:
        check.max_len("event_id", event_id, MAX_EVENT_ID_LEN)
    elif not _EVENT_ID_RE.match(event_id):
        check.fail("event_id", "may only contain letters, digits and . _ : -")
    check.max_len("request_id", request.request_id, MAX_REQUEST_ID_LEN)

    if check.violations or event_type is None:
        return None
    return Event(
        event_id=event_id,
        user_id=request.user_id,
        movie_id=request.movie_id,
        event_type=event_type,
        rating=rating,
        request_id=request.request_id or None,
        occurred_at_ms=int(occurred.timestamp() * 1000),
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


Clock = Callable[[], datetime]
