"""Pending events: a short per-user list in Redis of events Kafka has but the stream has not applied.

Request-time freshness (issue #16). The Event service appends each event to its user's list
once Kafka has acknowledged it (`push`), before answering; the Recommender reads the list
with the user's cache entry in one round trip and folds the events in for that request; the
streaming job removes the events it has applied (`TRIM_SCRIPT`) after its commit.

The list is an optimisation, never the record: Kafka is. Losing it (Redis flushed, down,
the TTL) only means answers come from the stream's state until the next micro-batch.

Key `pending:v1:<user_id>`, a Redis list, newest last, at most MAX_LEN entries (older ones
are trimmed off on push) and TTL_SECONDS after the last push. An entry is one line of text,
`<event_id>|<movie_id>|<event_type>|<rating or empty>|<occurred_at_ms>`; event ids never
contain `|` (event_svc.events allows [A-Za-z0-9._:-] only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_PREFIX = "pending:v1"
# More pending events than this for one user means the stream is far behind (or down): the
# oldest are dropped from the list (they stay in Kafka), which bounds a reader's cost.
MAX_LEN = 64
# The stream applies an event within a few triggers; an entry it never trims (its job down,
# Redis restarted in between) expires.
TTL_SECONDS = 300


def pending_key(user_id: int) -> str:
    """The key of one user's pending-event list."""
    return f"{_PREFIX}:{user_id}"


@dataclass(frozen=True)
class PendingEvent:
    """One event as the fold-in needs it."""

    event_id: str
    movie_id: int
    event_type: str
    rating: float | None
    occurred_at_ms: int

    def encode(self) -> str:
        rating = "" if self.rating is None else repr(float(self.rating))
        return f"{self.event_id}|{self.movie_id}|{self.event_type}|{rating}|{self.occurred_at_ms}"

    @classmethod
    def decode(cls, raw: bytes | str) -> PendingEvent | None:
        """The entry, or None for one this version cannot read."""
        text = raw.decode() if isinstance(raw, bytes) else raw
        parts = text.split("|")
        if len(parts) != 5:
            return None
        try:
            return cls(
                parts[0], int(parts[1]), parts[2], float(parts[3]) if parts[3] else None, int(parts[4])
            )
        except ValueError:
            return None


def decode_all(raws: Iterable[bytes | str]) -> list[PendingEvent]:
    """Readable entries, the first of each event id (a retried post may push one twice)."""
    out: dict[str, PendingEvent] = {}
    for raw in raws:
        event = PendingEvent.decode(raw)
        if event is not None:
            out.setdefault(event.event_id, event)
    return list(out.values())


# Remove the entries of applied events from one user's list. KEYS[1] the list; ARGV the
# applied event ids. Entries of events the batch did not have (posted since) stay. The list is
# at most MAX_LEN long, so this is a bounded amount of work inside Redis.
TRIM_SCRIPT = """
local applied = {}
for i = 1, #ARGV do applied[ARGV[i]] = true end
local removed = 0
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local id = string.match(item, '^([^|]*)')
  if applied[id] then removed = removed + redis.call('LREM', KEYS[1], 0, item) end
end
return removed
"""
