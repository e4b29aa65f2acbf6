"""The L1 cache of recommendation lists: fails open, so Redis being down never fails a serve."""

from __future__ import annotations

import logging
import time
from typing import NamedTuple, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from recommender_svc.ranking import CachedEntry, CachedList
from recsys.cache import RETIRED_VERSION_KEY, generation_key, recommendations_key
from recsys.pending import MAX_LEN, PendingEvent, decode_all, pending_key

log = logging.getLogger(__name__)

# KEYS: the user's cached list, their pending-event list, the retired-set version;
# ARGV[1]: the last index to read.
_GET_WITH_PENDING = (
    "return {redis.call('GET', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, ARGV[1]),"
    " redis.call('GET', KEYS[3])}"
)

# SET the list (KEYS[1]) only while the user's generation (KEYS[2]) is the one the caller read.
_SET_IF_GENERATION = """
if (redis.call('GET', KEYS[2]) or '') == ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    return 1
end
return 0
"""


class Lookup(NamedTuple):
    """What the serving path reads from Redis for one request (RecommendationCache.get_with_pending).

    `retired_version` is the retired-set version (b"" before the first retirement), None when
    Redis could not be read.
    """

    entry: CachedEntry | None
    pending: list[PendingEvent]
    retired_version: bytes | None


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
        self._set_if_generation = client.register_script(_SET_IF_GENERATION)

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

    async def get_with_pending(self, user_id: int) -> Lookup:
        """The user's entry, pending events (recsys.pending) and the retired-set version
        (recsys.cache.RETIRED_VERSION_KEY), in one command.

        A script (EVALSHA; redis-py loads it again after a Redis restart) rather than a
        pipeline: one command costs the cache-hit path about what the plain GET did.
        Each part is empty (None) on a miss, an unreadable value or any Redis error.
        """
        try:
            raw, pending, retired = await self._get_with_pending(
                keys=[recommendations_key(user_id), pending_key(user_id), RETIRED_VERSION_KEY],
                args=[MAX_LEN - 1],
            )
        except (RedisError, OSError) as err:
            self._failed("get", err)
            return Lookup(None, [], None)
        self._recovered()
        raw = cast("bytes | None", raw)
        entry = CachedEntry.parse(raw) if raw is not None else None
        return Lookup(entry, decode_all(pending) if pending else [], cast("bytes | None", retired) or b"")

    async def bump_retired(self) -> bool:
        """Tell every replica the retired set changed (recsys.cache.RETIRED_VERSION_KEY)."""
        try:
            await self.client.incr(RETIRED_VERSION_KEY)
        except (RedisError, OSError) as err:
            self._failed("bump_retired", err)
            return False
        return True

    async def generation(self, user_id: int) -> bytes | None:
        """The user's invalidation generation (b"" before the first), None when unreadable.

        Read it BEFORE reading what a list is computed from, and pass it to `set`.
        """
        try:
            value = await self.client.get(generation_key(user_id))
        except (RedisError, OSError) as err:
            self._failed("generation", err)
            return None
        return cast("bytes | None", value) or b""

    async def set(self, user_id: int, value: CachedList, generation: bytes | None) -> None:
        """Cache `value` unless the user's list was invalidated since `generation` was read.

        A list computed from data read before an event was committed would otherwise be
        cached after the speed layer's delete, and serve a movie the user has just seen.
        """
        if generation is None:
            return
        try:
            await self._set_if_generation(
                keys=[recommendations_key(user_id), generation_key(user_id)],
                args=[value.encode(), self.ttl_seconds, generation],
            )
        except (RedisError, OSError) as err:
            self._failed("set", err)

    async def delete(self, user_id: int) -> None:
        try:
            await self.client.delete(recommendations_key(user_id))
        except (RedisError, OSError) as err:
            self._failed("delete", err)
