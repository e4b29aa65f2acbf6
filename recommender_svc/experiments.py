"""The running online experiment, as the recommender needs it on every request.

Re-read at most every few seconds (like the live model's version): a started or stopped
experiment reaches every replica within that, and a request costs no query for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

_RUNNING_SQL = "SELECT name, candidate_version, candidate_share FROM experiments WHERE status = 'running'"


@dataclass(frozen=True)
class RunningExperiment:
    name: str
    candidate_version: str
    candidate_share: float


class ExperimentReader:
    """The experiment that runs now (None: none), cached for `ttl_seconds`."""

    def __init__(self, pool: asyncpg.Pool, ttl_seconds: float = 2.0) -> None:
        self.pool = pool
        self.ttl_seconds = ttl_seconds
        self._cached: tuple[float, RunningExperiment | None] | None = None

    async def current(self) -> RunningExperiment | None:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.ttl_seconds:
            return self._cached[1]
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(_RUNNING_SQL)
        running = None if row is None else RunningExperiment(row[0], row[1], float(row[2]))
        self._cached = (now, running)
        return running
