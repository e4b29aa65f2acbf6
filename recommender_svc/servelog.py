"""Logging of every serve to recommendation_logs, off the serving path.

`submit` only appends to a bounded in-process queue; a background task writes the queue in
batches. When the database is slow or down the queue fills and the oldest entries are
dropped (counted, with a warning), so serving never waits on the log.

The flush runs on the serving event loop, so whatever it does synchronously delays every call
in flight. Binding a row's two arrays through asyncpg costs ~12 us a row, all at once: a batch
of 125 held the loop for ~1.9 ms, and that stall set the cache-hit p99 (3.6 vs 2.4 ms with no
log at 500 req/s). So `submit` renders the arrays as PostgreSQL array literals (a few us, spread
over the calls) and the INSERT casts them from text, which asyncpg passes through as is: the
loop is held ~0.4 ms for 125 rows; flushing every 0.1 s keeps batches small.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import asyncpg

log = logging.getLogger(__name__)

_INSERT_SQL = """
INSERT INTO recommendation_logs
    (request_id, user_id, tier, model_version, movie_ids, scores, served_at, latency_ms,
     experiment, variant)
VALUES ($1, $2, $3, $4, $5::text::bigint[], $6::text::real[], $7, $8, $9, $10)
ON CONFLICT (request_id) DO NOTHING
"""


@dataclass(frozen=True)
class ServeLogEntry:
    """One serve: what was answered to whom, by which tier, how fast."""

    request_id: str
    user_id: int
    tier: str
    model_version: str | None
    movie_ids: list[int]
    scores: list[float]
    served_at: datetime
    latency_ms: float
    # The online experiment the user was in and its variant (None: no experiment ran).
    experiment: str | None = None
    variant: str | None = None

    def row(self) -> tuple[object, ...]:
        """The INSERT's parameters, the arrays as text (see the module's docstring)."""
        return (
            self.request_id,
            self.user_id,
            self.tier,
            self.model_version,
            array_literal(self.movie_ids),
            array_literal(self.scores),
            self.served_at,
            self.latency_ms,
            self.experiment,
            self.variant,
        )


def array_literal(values: list[int] | list[float]) -> str:
    """A PostgreSQL array literal of numbers: [1, 2] -> '{1,2}' (nan/inf are valid input too)."""
    return "{" + ",".join(map(str, values)) + "}"


class ServeLogWriter:
    """A bounded queue of serve entries and the task that flushes it in batches."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_queue: int = 10_000,
        batch_size: int = 250,
        interval_seconds: float = 0.1,
        write_timeout_seconds: float = 5.0,
    ) -> None:
        self.pool = pool
        # rows ready for the INSERT (ServeLogEntry.row), rendered when submitted
        self.queue: deque[tuple[object, ...]] = deque()
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.interval_seconds = interval_seconds
        self.write_timeout_seconds = write_timeout_seconds
        self.dropped = 0
        self.written = 0
        self._last_warning = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, entry: ServeLogEntry) -> None:
        """Queue one entry; never blocks. A full queue drops its oldest entry."""
        if len(self.queue) >= self.max_queue:
            self.queue.popleft()
            self._drop(1)
        self.queue.append(entry.row())
        if len(self.queue) >= self.batch_size:
            self._wake.set()

    def _drop(self, n: int) -> None:
        self.dropped += n
        now = time.monotonic()
        if now - self._last_warning > 10.0:
            self._last_warning = now
            log.warning(
                "recommendation log queue full, dropping oldest entries",
                extra={"dropped_total": self.dropped, "queue": len(self.queue)},
            )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="serve-log-writer")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_seconds)
            self._wake.clear()
            while self.queue:
                if not await self.flush_once():
                    await asyncio.sleep(1.0)  # the database is unwell; back off
                    break

    async def flush_once(self) -> bool:
        """Write one batch; on failure put it back (as far as room allows). True on success."""
        batch = [self.queue.popleft() for _ in range(min(self.batch_size, len(self.queue)))]
        if not batch:
            return True
        try:
            async with self.pool.acquire(timeout=self.write_timeout_seconds) as conn:
                await conn.executemany(_INSERT_SQL, batch, timeout=self.write_timeout_seconds)
        except asyncio.CancelledError:
            self._requeue(batch)
            raise
        except Exception as err:
            log.warning("writing recommendation logs failed", extra={"error": repr(err), "n": len(batch)})
            self._requeue(batch)
            return False
        self.written += len(batch)
        return True

    def _requeue(self, batch: list[tuple[object, ...]]) -> None:
        room = self.max_queue - len(self.queue)
        keep = batch[len(batch) - room :] if room < len(batch) else batch
        if len(keep) < len(batch):
            self._drop(len(batch) - len(keep))
        self.queue.extendleft(reversed(keep))

    async def close(self, timeout_seconds: float = 5.0) -> None:
        """Stop the task and write what is queued, giving up after `timeout_seconds`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        deadline = time.monotonic() + timeout_seconds
        while self.queue and time.monotonic() < deadline:
            if not await self.flush_once():
                break
        if self.queue:
            log.warning("recommendation logs lost at shutdown", extra={"n": len(self.queue)})
