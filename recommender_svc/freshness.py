"""Request-time freshness: the user's pending events folded in for this one request.

Events the Event service has made durable but the streaming job has not applied yet sit in
the user's pending list (recsys.pending). The vector the stream will store once it applies
them is the fold-in (batch.foldin, the stream's own code and weights) over the user's whole
history (user_items: one summed signal per movie, recsys.tables.user_items) plus those events, against the
live model's item factors. This computes exactly that, per request, so an answer given right
after a POST already reflects it:

- one query: the user's user_items signals, plus the signals of the pending events the stream
  has not stored yet (by event id in the window: an event the stream applied but has not
  trimmed yet counts once), summed per movie, each with its movie's embedding and latest event
  (which also gives the movies liked last, the query's short-term part: recsys.domain.recency);
- the Gram matrix YtY of the item factors and the model's user step (batch.foldin), kept per live
  model and re-checked every few seconds (the same key the stream uses: live version, count
  and last change of the embeddings).

Any failure (Postgres slow or away) returns None: the caller falls back to the stored vector.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from batch.foldin import UserStep, gram
from recsys.domain.events import event_signal
from recsys.domain.recency import LATEST_LIKED, Liked
from recsys.domain.vectors import to_array
from recsys.pending import PendingEvent

log = logging.getLogger(__name__)

_MODEL_KEY_SQL = """
SELECT (SELECT version FROM models WHERE status = 'live'), count(embedding), max(updated_at) FROM movies
"""
_MODEL_SQL = """
SELECT (SELECT params FROM models WHERE status = 'live') AS params,
       (SELECT array_agg(embedding) FROM movies WHERE embedding IS NOT NULL) AS embeddings
"""

# The user's whole history and the pending events not stored yet, as one summed signal per
# movie with its embedding and latest event (a movie the model has no factors for is left out,
# as the stream does).
_SIGNALS_SQL = """
WITH ev AS (
    SELECT movie_id, signal, last_at FROM user_items WHERE user_id = $1
    UNION ALL
    SELECT p.movie_id, p.signal, to_timestamp(p.occurred_ms / 1000.0)
    FROM unnest($2::text[], $3::bigint[], $4::float8[], $5::bigint[])
         AS p(event_id, movie_id, signal, occurred_ms)
    WHERE NOT EXISTS (SELECT 1 FROM rt_user_interactions i WHERE i.event_id = p.event_id)
),
summed AS (SELECT movie_id, sum(signal)::float8 AS signal, max(last_at) AS last_at FROM ev GROUP BY movie_id)
SELECT s.movie_id, s.signal, s.last_at, m.embedding
FROM summed s JOIN movies m USING (movie_id)
WHERE m.embedding IS NOT NULL
"""


@dataclass(frozen=True)
class FoldInModel:
    """What fold-in needs of the live model besides the user's own items."""

    key: tuple[Any, ...]
    gram: np.ndarray[Any, Any]
    n_items: int  # the movies `gram` sums over
    step: UserStep  # the live model's (batch.foldin)


def _params(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})


Row = tuple[int, float, Any]


@dataclass(frozen=True)
class Folded:
    """A user's vector with their pending events, and their latest liked movies (newest first,
    at most LATEST_LIKED: the short-term part, recsys.domain.recency)."""

    vector: np.ndarray[Any, Any]
    recent: list[Liked]


def fold_rows(rows: Sequence[Row], model: FoldInModel) -> np.ndarray[Any, Any] | None:
    """The fold-in vector of (movie_id, summed signal, embedding) rows; None when uninformative.

    The same steps as the stream's batch.streaming.sink.compute_profiles for one user.
    """
    if not rows:
        return None
    factors = np.array([np.asarray(r[2], dtype=np.float64) for r in rows])
    signals = np.array([r[1] for r in rows], dtype=np.float64)
    x = model.step.solve(factors, signals, model.gram, model.n_items)
    return x.astype(np.float32) if x.any() else None


class PendingFoldIn:
    """Computes a user's vector with their pending events, on the serving pool."""

    MODEL_CHECK_SECONDS = 5.0

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._model: FoldInModel | None = None
        self._checked_at = 0.0

    async def _current_model(self, conn: asyncpg.Connection) -> FoldInModel | None:
        now = time.monotonic()
        if self._model is not None and now - self._checked_at < self.MODEL_CHECK_SECONDS:
            return self._model
        key = tuple(await conn.fetchrow(_MODEL_KEY_SQL) or ())
        self._checked_at = now
        if self._model is None or self._model.key != key:
            row = await conn.fetchrow(_MODEL_SQL)
            if row is None or not row["embeddings"]:
                self._model = None
                return None
            factors = np.array([to_array(e) for e in row["embeddings"]], dtype=np.float64)
            params = _params(row["params"])
            self._model = FoldInModel(
                key=key,
                gram=gram(factors),
                n_items=len(factors),
                step=UserStep.of(params),
            )
            log.info("fold-in model loaded", extra={"model": key[0], "movies": len(factors)})
        return self._model

    async def vector(self, user_id: int, pending: Sequence[PendingEvent]) -> Folded | None:
        """The user's vector with `pending` folded in, and the embeddings of the movies they
        liked last (recsys.domain.recency); None when it cannot be computed."""
        try:
            async with self.pool.acquire() as conn:
                model = await self._current_model(conn)
                if model is None:
                    return None
                rows = await conn.fetch(
                    _SIGNALS_SQL,
                    user_id,
                    [p.event_id for p in pending],
                    [p.movie_id for p in pending],
                    [event_signal(p.event_type, p.rating) for p in pending],
                    [p.occurred_at_ms for p in pending],
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            log.warning("pending fold-in failed; serving the stored vector", extra={"error": repr(err)})
            return None
        embeddings = [to_array(r["embedding"]) for r in rows]
        summed = [(r["movie_id"], r["signal"], e) for r, e in zip(rows, embeddings, strict=True)]
        vector = fold_rows(summed, model)
        if vector is None:
            return None
        liked = sorted((i for i, r in enumerate(rows) if r["signal"] > 0 and r["last_at"] is not None),
                       key=lambda i: (rows[i]["last_at"], rows[i]["movie_id"]), reverse=True)
        return Folded(vector, [Liked(rows[i]["movie_id"], embeddings[i]) for i in liked[:LATEST_LIKED]])
