"""The L1 cache of recommendation lists: fails open, so Redis being down never fails a serve."""

from __future__ import annotations

import logging
import time
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from recommender_svc.ranking import CachedEntry, CachedList
from recsys.cache import recommendations_key
from recsys.pending import MAX_LEN, PendingEvent, decode_all, pending_key

log = logging.getLogger(__name__)

# KEYS: the user's cached list, their pending-event list; ARGV[1]: the last index to read.
_GET_WITH_PENDING = "return {redis.call('GET', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, ARGV[1])}"


class RecommendationCache:
    """Get and set one user's cached candidate list; any Redis error is a miss.

    The first error after a healthy period is logged as a warning, later ones only counted,
    so a Redis outage does not flood the logs at serving rate.
    """

    WARN_EVERY_SECONDS = 60.0

    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
        self.client = client
        self.ttl_seconds = ttl_seconds
        self.errors = 0
        self._warned_at: float | None = None
        self._get_with_pending = client.register_script(_GET_WITH_PENDING)

    def _failed(self, op: str, err: Exception) -> None:
        self.errors += 1
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at > self.WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning(
                "redis unavailable, serving from postgres",
                extra={"op": op, "error": repr(err), "redis_errors": self.errors},
            )

    def _recovered(self) -> None:
        if self._warned_at is not None:
            self._warned_at = None
            log.info("redis reachable again", extra={"redis_errors": self.errors})

    async def get(self, user_id: int) -> CachedEntry | None:
        """The user's entry (decoded lazily), None on a miss or an unreadable value."""
        try:
            raw = await self.client.get(recommendations_key(user_id))
        except (RedisError, OSError) as err:
            self._failed("get", err)
            return None
        self._recovered()
        # The client is made without decode_responses (recsys.cache.create_client), so a hit
        # is bytes; redis-py's annotation covers both client modes (bytes | str).
        raw = cast("bytes | None", raw)
        return CachedEntry.parse(raw) if raw is not None else None

    async def get_with_pending(self, user_id: int) -> tuple[CachedEntry | None, list[PendingEvent]]:
        """The user's entry and pending events (recsys.pending), in one command.

        A script (EVALSHA; redis-py loads it again after a Redis restart) rather than a
        pipeline: one command costs the cache-hit path about what the plain GET did.
        Either part is empty on a miss, an unreadable value or any Redis error.
        """
        try:
            raw, pending = await self._get_with_pending(
                keys=[recommendations_key(user_id), pending_key(user_id)], args=[MAX_LEN - 1]
            )
        except (RedisError, OSError) as err:
            self._failed("get", err)
            return None, []
        self._recovered()
        raw = cast("bytes | None", raw)
        entry = CachedEntry.parse(raw) if raw is not None else None
        return entry, decode_all(pending) if pending else []

    async def set(self, user_id: int, value: CachedList) -> None:
        try:
            await self.client.set(recommendations_key(user_id), value.encode(), ex=self.ttl_seconds)
        except (RedisError, OSError) as err:
            self._failed("set", err)

    async def delete(self, user_id: int) -> None:
        try:
            await self.client.delete(recommendations_key(user_id))
        except (RedisError, OSError) as err:
            self._failed("delete", err)
