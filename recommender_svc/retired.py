"""The retired movies, as a set every serve can check its cached list against for free.

The database queries of every tier leave retired movies out themselves (recommender_svc.store);
what they cannot reach are the lists already in Redis. Rather than find and delete every cached
list that holds a movie being retired (a scan of all users' keys), each serve checks the list
it read against this set, and a list that holds a retired movie is recomputed.

The set is tiny (a catalogue retires a handful of movies) and lives in each replica's memory.
It is reloaded from PostgreSQL when the version in Redis (recsys.cache.RETIRED_VERSION_KEY,
read in the same script call as the cached list) differs from the one it was loaded at, and at
most every `max_age_seconds` in any case, which bounds how long a replica can miss a change
while Redis is unreachable or the bump after a retirement failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

# Reloads at most this often without a version change (the backstop, not the signal).
MAX_AGE_SECONDS = 30.0


class RetiredSet:
    """The ids of retired movies, reloaded when the shared version moves."""

    def __init__(
        self, load: Callable[[], Awaitable[frozenset[int]]], max_age_seconds: float = MAX_AGE_SECONDS
    ) -> None:
        self._load = load
        self.max_age_seconds = max_age_seconds
        self.ids: frozenset[int] = frozenset()
        self._version: bytes | None = None
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self, version: bytes | None) -> bool:
        if self._loaded_at is None or time.monotonic() - self._loaded_at > self.max_age_seconds:
            return False
        return version is None or version == self._version

    async def current(self, version: bytes | None) -> frozenset[int]:
        """The retired ids as of `version` (None: Redis's version unknown, the last set is kept
        until it is `max_age_seconds` old)."""
        if self._fresh(version):
            return self.ids
        async with self._lock:  # one reload for a burst of requests that saw the same change
            if not self._fresh(version):
                await self.reload(version)
        return self.ids

    async def reload(self, version: bytes | None) -> None:
        """Read the set now; `version` is the Redis version it is at least as new as."""
        self.ids = await self._load()
        self._version = version
        self._loaded_at = time.monotonic()
