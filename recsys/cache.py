"""The Redis L1 cache: client factory and the key scheme shared by writers and invalidators."""

from __future__ import annotations

import redis.asyncio as aioredis

from recsys.pending import pending_key

# Bump when the cached value's key scheme changes. The value's format carries its own magic
# (recommender_svc.ranking.CachedEntry), so a value of another format is read as a miss and
# rewritten, and invalidators (which only delete keys) never need to know the format.
_PREFIX = "recs:v1"


# A user's generation: bumped by every writer that invalidates the user's list (the speed
# layer, after it commits the user's events). A reader that computed a list from data read
# before a bump must not cache it (see RecommendationCache.set); the key outlives any compute.
_GENERATION_PREFIX = "recs:gen"
GENERATION_TTL_SECONDS = 2 * 3600


# The catalogue's retired-set version: bumped by the CatalogueService after every retire or
# restore it commits. Every Recommender replica reads it with each user's cached list (one
# script call) and reloads its set of retired movie ids from PostgreSQL when it moved, so a
# cached list holding a movie retired since is never served (recommender_svc.retired).
RETIRED_VERSION_KEY = "recs:retired:version"


def recommendations_key(user_id: int) -> str:
    """The key of one user's cached recommendation list."""
    return f"{_PREFIX}:{user_id}"


def generation_key(user_id: int) -> str:
    """The key of one user's invalidation counter."""
    return f"{_GENERATION_PREFIX}:{user_id}"


def user_keys(user_id: int) -> list[str]:
    """Every Redis key that holds something of one user: DeleteUser deletes them all."""
    return [recommendations_key(user_id), generation_key(user_id), pending_key(user_id)]


def create_client(redis_url: str, timeout_seconds: float = 0.05) -> aioredis.Redis:
    """An asyncio client with short timeouts: a slow cache must fall through, not stall serving."""
    return aioredis.from_url(
        redis_url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        health_check_interval=30,
    )
