"""After Kafka has an event: append it to its user's pending list in Redis (recsys.pending).

What the Recommender folds in at request time, so the user's next answer reflects the event
before the streaming job has applied it. Best effort by design: Kafka is the record, and a
Redis that is slow or away costs only that freshness (bounded by a short timeout), never an
event or an error to the caller.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from event_svc.events import Event
from recsys.pending import MAX_LEN, TTL_SECONDS, PendingEvent, pending_key

log = logging.getLogger(__name__)


def pending_of(event: Event) -> PendingEvent:
    return PendingEvent(event.event_id, event.movie_id, event.event_type, event.rating, event.occurred_at_ms)


# One command for a whole PostEvents call: RPUSH, LTRIM and EXPIRE per user as a pipeline cost
# ~0.1 ms of this service's CPU per event (redis-py's per-command overhead), more than the
# validation (bench/ingest.py, #16). KEYS: the users' lists; ARGV: max length, TTL, then per
# key its entry count and entries. (All keys in one script: a single Redis, not a cluster.)
_PUSH = """
local maxlen, ttl, at = tonumber(ARGV[1]), tonumber(ARGV[2]), 3
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at])
  redis.call('RPUSH', key, unpack(ARGV, at + 1, at + n))
  redis.call('LTRIM', key, -maxlen, -1)
  redis.call('EXPIRE', key, ttl)
  at = at + n + 1
end
return #KEYS
"""


class PendingWriter:
    """Appends durable events to their users' lists: one script call (one round trip) per call."""

    WARN_EVERY_SECONDS = 60.0

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._push = client.register_script(_PUSH)
        self.errors = 0
        self._warned_at: float | None = None

    async def push(self, events: Iterable[Event]) -> bool:
        """Append each event to its user's list (trimmed to MAX_LEN, TTL renewed); False on failure."""
        by_user: dict[int, list[str]] = defaultdict(list)
        for event in events:
            by_user[event.user_id].append(pending_of(event).encode())
        if not by_user:
            return True
        args: list[str | int] = [MAX_LEN, TTL_SECONDS]
        for entries in by_user.values():
            args.append(len(entries))
            args.extend(entries)
        try:
            await self._push(keys=[pending_key(u) for u in by_user], args=args)
        except (RedisError, OSError) as err:
            self.errors += 1
            now = time.monotonic()
            if self._warned_at is None or now - self._warned_at > self.WARN_EVERY_SECONDS:
                self._warned_at = now
                log.warning(
                    "redis unavailable: events are durable but not visible before the stream applies them",
                    extra={"error": repr(err), "redis_errors": self.errors},
                )
            return False
        self._warned_at = None
        return True
