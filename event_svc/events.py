"""The event record on the wire (Kafka value), the rules of an event that need the clock, and
the record a valid request becomes.

Kafka value: one JSON object per event, `{"schema": 1, "event_id": ..., "user_id": ...,
"movie_id": ..., "event_type": "rate", "rating": 4.5 | null, "request_id": "..." | null,
"occurred_at_ms": <epoch millis>}`. The key is the user id (decimal ASCII), so one user's
events stay ordered in one partition. Readers must check `schema`; adding an optional
field keeps the version, anything else bumps it.

Validation: the static rules of an event (ids, type, the rating and its range, `rating` with
EVENT_TYPE_RATE only, the `event_id` alphabet) are in event_service.proto and are checked before
this module sees a request (recsys.validation). What needs the clock is here:
- `occurred_at` defaults to now; up to MAX_CLOCK_SKEW in the future is accepted (client
  clocks drift) and clamped to now; more is rejected. Older than MAX_AGE is rejected too for
  user callers: a client's clock or queue should not be days behind. A service caller (an
  importer, a replay of a dataset with its own timestamps: bench/lifecycle.py) may backfill
  events of any age: they take the same path, and the nightly archive files what is older than
  the recent window (recsys.windows) like any other row.
An empty `event_id` gets a UUID4. A client that retries with the same id is harmless (the sink is
idempotent on it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from recsys.domain.events import EVENT_TYPE_NAMES, SCHEMA_VERSION
from recsys.errors import FieldViolation
from recsys.v1 import event_service_pb2 as pb

MAX_CLOCK_SKEW = timedelta(seconds=30)
MAX_AGE = timedelta(days=2)

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


def clock_violations(
    request: pb.PostEventRequest, now: datetime, max_age: timedelta | None = MAX_AGE
) -> list[FieldViolation]:
    """The rules of an event that need the clock: `occurred_at` neither in the future (beyond
    MAX_CLOCK_SKEW) nor older than `max_age` (None: any age, a service's backfill)."""
    if not request.HasField("occurred_at"):
        return []
    occurred = request.occurred_at.ToDatetime(tzinfo=UTC)
    if occurred > now + MAX_CLOCK_SKEW:
        return [FieldViolation("occurred_at", f"is in the future ({occurred.isoformat()})")]
    if max_age is not None and occurred < now - max_age:
        return [FieldViolation("occurred_at", f"is older than {max_age.days} days ({occurred.isoformat()})")]
    return []


def to_event(request: pb.PostEventRequest, now: datetime) -> Event:
    """The record of a request that passed every check (the protos' rules, the clock's, the
    catalogue's): its id or a new one, and `occurred_at` clamped to now."""
    occurred = now
    if request.HasField("occurred_at"):
        occurred = min(request.occurred_at.ToDatetime(tzinfo=UTC), now)
    return Event(
        event_id=request.event_id or str(uuid.uuid4()),
        user_id=request.user_id,
        movie_id=request.movie_id,
        event_type=EVENT_TYPE_NAMES[request.type],
        rating=float(request.rating) if request.HasField("rating") else None,
        request_id=request.request_id or None,
        occurred_at_ms=int(occurred.timestamp() * 1000),
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


Clock = Callable[[], datetime]
