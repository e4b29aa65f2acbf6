"""Which movie ids exist: a set loaded from Postgres, refreshed in the background.

A miss is confirmed against Postgres before rejecting (a movie added since the last
refresh is accepted at once); confirmed misses are remembered briefly so a client
hammering an unknown id does not hammer the database.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from recsys.errors import Unavailable

log = logging.getLogger(__name__)


class MovieCatalogue:
    """Answers `exists(movie_id)` from memory, falling back to one indexed lookup."""

    def __init__(
        self, pool: asyncpg.Pool, refresh_seconds: float = 60.0, negative_ttl_seconds: float = 10.0
    ) -> None:
        self._pool = pool
        self._refresh_seconds = refresh_seconds
        self._negative_ttl = negative_ttl_seconds
        self._ids: set[int] = set()
        self._missing: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_loop(), name="catalogue-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def refresh(self) -> None:
        rows = await self._pool.fetch("SELECT movie_id FROM movies")
        self._ids = {r["movie_id"] for r in rows}
        self._missing.clear()
        log.info("catalogue loaded", extra={"movies": len(self._ids)})

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception:  # keep the last good set; retry on the next tick
                log.warning("catalogue refresh failed", exc_info=True)

    async def exists(self, movie_id: int) -> bool:
        if movie_id in self._ids:
            return True
        now = time.monotonic()
        if self._missing.get(movie_id, 0.0) > now:
            return False
        try:
            found = await self._pool.fetchval("SELECT 1 FROM movies WHERE movie_id = $1", movie_id)
        except (OSError, asyncpg.PostgresError) as err:
            raise Unavailable("the catalogue is unavailable, retry later") from err
        if found:
            self._ids.add(movie_id)
            return True
        self._missing[movie_id] = now + self._negative_ttl
        return False
