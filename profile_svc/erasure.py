"""DeleteUser's work: the user's rows in PostgreSQL (recsys.tables.deleted_users) and keys in Redis.

Order, so that no serve running alongside can put the user back in the cache:
1. the user's generation is bumped: a list computed from data read before now cannot be cached
   (recommender_svc.cache.RecommendationCache.set compares the generation it read);
2. one PostgreSQL transaction writes the tombstone and deletes every row of the user;
3. every key of the user is deleted (recsys.cache.user_keys), the generation included: a serve
   that read the generation in between finds it gone and caches nothing either, and one that
   starts after this reads the erased state (no vector, no history: the popular tier).
A Redis failure fails the call (UNAVAILABLE) after the database part: the erasure is not complete
until the cache is, and a retry is harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from recsys.cache import GENERATION_TTL_SECONDS, generation_key, user_keys
from recsys.errors import Unavailable
from recsys.tables import deleted_users

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Erased:
    deleted_at: datetime
    rows: dict[str, int]
    keys: int


class UserEraser:
    """Erases users on the service's pool and Redis client."""

    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis) -> None:
        self.pool = pool
        self.redis = redis

    async def erase(self, user_id: int) -> Erased:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(generation_key(user_id))
                pipe.expire(generation_key(user_id), GENERATION_TTL_SECONDS)
                await pipe.execute()
        except (RedisError, OSError) as err:
            raise Unavailable(f"the cache is unreachable, nothing was deleted: {err}") from err
        async with self.pool.acquire() as conn:
            deleted_at, rows = await deleted_users.erase(conn, user_id)
        try:
            keys = int(await self.redis.delete(*user_keys(user_id)))
        except (RedisError, OSError) as err:
            raise Unavailable(
                f"the user's rows are deleted but not their cached lists; retry: {err}"
            ) from err
        log.info("user erased", extra={"user_id": user_id, "rows": sum(rows.values()), "keys": keys})
        return Erased(deleted_at, rows, keys)
