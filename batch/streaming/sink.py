"""The writes of one micro-batch: Postgres (interactions, profiles, feedback), Redis.

Each Spark task of a micro-batch writes its own partition (Kafka is keyed by user, so a
partition holds all of a user's events of the batch) with `SpeedLayerSink.write_batch`, in one
transaction; the driver only tracks the live model's embeddings (`EmbeddingsTracker`, broadcast
to the tasks) and backfills feedback positions once per batch (`backfill_feedback`). Every
write is idempotent, so replaying a batch after a crash, whole or in part, changes nothing:
- rt_user_interactions: INSERT ... ON CONFLICT (event_id) DO NOTHING;
- user_items (the user's whole history, recsys.tables.user_items): only the rows that INSERT returned
  are added, in the same statement, so a replayed event adds nothing;
- user_profiles: the vector folded in over ALL the user's user_items rows (archived history
  included), the counts their sums; recomputed, never incremented;
- recommendation_feedback: ON CONFLICT (event_id), filling a missing position only.
Cache keys are deleted after the commit, so a reader cannot re-cache the old profile from
a transaction that has not committed yet; the users' generations are bumped with the delete,
so a reader that read before the commit cannot cache its list after the delete either.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

import numpy as np
import psycopg
import redis
from pgvector.psycopg import register_vector

from batch.foldin import UserStep, gram
from batch.streaming.pending import trim_applied
from recsys.cache import GENERATION_TTL_SECONDS, generation_key, recommendations_key
from recsys.domain.vectors import EMBEDDING_DIM, to_array
from recsys.tables import deleted_users, interactions, user_profiles
from recsys.tables.user_items import USER_ITEMS, lock_users

log = logging.getLogger(__name__)


# Position is 1-based (1 = the first item served), NULL when the movie was not in the list
# or the log row is not there yet; the backfill below fills it in once the log row lands.
INSERT_FEEDBACK = """
    INSERT INTO recommendation_feedback
        (event_id, request_id, user_id, movie_id, event_type, position, occurred_at)
    SELECT %(event_id)s, %(request_id)s, %(user_id)s, %(movie_id)s, %(event_type)s,
           (SELECT array_position(l.movie_ids, %(movie_id)s::bigint)
              FROM recommendation_logs l WHERE l.request_id = %(request_id)s),
           %(occurred_at)s
    ON CONFLICT (event_id) DO UPDATE SET position = EXCLUDED.position
        WHERE recommendation_feedback.position IS NULL
"""

# The Recommender logs a serve without delaying its answer, so feedback can overtake its
# log row by a few milliseconds; each batch retries the recent rows that still lack one.
BACKFILL_FEEDBACK = """
    UPDATE recommendation_feedback f
       SET position = array_position(l.movie_ids, f.movie_id)
      FROM recommendation_logs l
     WHERE f.position IS NULL AND f.request_id = l.request_id
       AND f.recorded_at > now() - interval '1 hour'
       AND array_position(l.movie_ids, f.movie_id) IS NOT NULL
"""

@dataclass(frozen=True)
class ModelEmbeddings:
    """The movie embeddings of the live model, with what fold-in needs precomputed."""

    key: tuple[Any, ...]
    version: str | None
    index: dict[int, int]
    factors: np.ndarray
    gram: np.ndarray
    step: UserStep  # the live model's (batch.foldin)
    # The movies the live model trained (model_item_factors); the others' embeddings come from
    # cold start or the stream's item fold-in (batch.streaming.items).
    trained: frozenset[int] = frozenset()
    loaded: int = 0  # rows the load that made it read (every one, or the changed ones)


# A reload within a version re-reads the rows updated since the last load's newest `updated_at`
# minus this much: a transaction's now() is its start, so a writer that started before that
# newest row but committed after it is still caught.
RELOAD_OVERLAP = timedelta(minutes=5)


def load_embeddings(
    conn: psycopg.Connection[Any],
    key: EmbeddingsKey,
    previous: ModelEmbeddings | None = None,
    overlap: timedelta = RELOAD_OVERLAP,
) -> ModelEmbeddings:
    """The live embeddings.

    Within one version (the stream's item fold-in, a catalogue edit) only the movies updated
    since `previous` are read and applied to it, and the trained set is `previous`'s; a new
    version (a publish) reads every embedding again.
    """
    row = conn.execute("SELECT version, params FROM models WHERE status = 'live'").fetchone()
    version, params = (row[0], row[1] or {}) if row else (None, {})
    if previous is not None and previous.version == version:
        updated = _reload_changed(conn, previous, key, overlap)
        if updated is not None:
            return updated
    trained = frozenset(
        r[0]
        for r in conn.execute(
            "SELECT movie_id FROM model_item_factors WHERE model_version = %s", (version,)
        ).fetchall()
    )
    rows = conn.execute("SELECT movie_id, embedding FROM movies WHERE embedding IS NOT NULL").fetchall()
    factors = np.array([to_array(r[1], np.float64) for r in rows]).reshape(-1, EMBEDDING_DIM)
    return ModelEmbeddings(
        key=key,
        version=version,
        index={r[0]: i for i, r in enumerate(rows)},
        factors=factors,
        gram=gram(factors),
        step=UserStep.of(params),
        trained=trained,
        loaded=len(rows),
    )


def _reload_changed(
    conn: psycopg.Connection[Any], previous: ModelEmbeddings, key: EmbeddingsKey, overlap: timedelta
) -> ModelEmbeddings | None:
    """`previous` with the movies updated since its load applied; None when that cannot be
    trusted (no timestamp to start from, or the result disagrees with the movie count)."""
    since = cast(EmbeddingsKey, previous.key).updated_at  # made by load_embeddings
    if since is None:
        return None
    changed = conn.execute(
        "SELECT movie_id, embedding FROM movies WHERE updated_at > %s", (since - overlap,)
    ).fetchall()
    updated = _apply(previous, key, changed)
    if len(updated.index) == key.movies:
        return updated
    log.warning("incremental reload disagrees with the movie count; reading every embedding")
    return None


def _apply(
    previous: ModelEmbeddings, key: tuple[Any, ...], changed: Sequence[Sequence[Any]]
) -> ModelEmbeddings:
    """`previous` with the (movie_id, embedding or None) rows applied: replaced, added, removed."""
    gone = {r[0] for r in changed if r[1] is None and r[0] in previous.index}
    keep = [m for m in previous.index if m not in gone]
    factors = previous.factors[[previous.index[m] for m in keep]] if gone else previous.factors.copy()
    index = {m: i for i, m in enumerate(keep)}
    fresh = [(r[0], to_array(r[1], np.float64)) for r in changed if r[1] is not None]
    added = [(m, v) for m, v in fresh if m not in index]
    for movie_id, vector in fresh:
        if movie_id in index:
            factors[index[movie_id]] = vector
    if added:
        factors = np.vstack([factors, np.array([v for _, v in added]).reshape(-1, EMBEDDING_DIM)])
        index.update({m: len(keep) + i for i, (m, _) in enumerate(added)})
    return replace(previous, key=key, index=index, factors=factors, gram=gram(factors), loaded=len(changed))


@dataclass(frozen=True)
class Profile:
    user_id: int
    vector: np.ndarray | None
    interaction_count: int
    rating_count: int


def compute_profiles(rows: Iterable[Sequence[Any]], model: ModelEmbeddings) -> list[Profile]:
    """Fold-in vectors and counts from user_items rows (user_id, movie_id, signal, events, ratings).

    The rows are a user's whole history, one per movie with its summed signal, so the vector
    is the fold-in over every event the user ever sent (the same as folding in the events one
    by one: batch.foldin sums repeated items first). A user none of whose movies has an
    embedding gets no vector (the old one stays).
    """
    by_user: dict[int, list[Sequence[Any]]] = defaultdict(list)
    for row in rows:
        by_user[row[0]].append(row)
    profiles = []
    for user_id, items in by_user.items():
        known = [r for r in items if r[1] in model.index]
        vector = None
        if known:
            factors = model.factors[[model.index[r[1]] for r in known]]
            signals = np.array([r[2] for r in known], dtype=np.float64)
            x = model.step.solve(factors, signals, model.gram, len(model.factors))
            vector = x.astype(np.float32) if x.any() else None
        events = sum(int(r[3]) for r in items)
        ratings = sum(int(r[4]) for r in items)
        profiles.append(Profile(user_id, vector, events, ratings))
    return profiles


class EmbeddingsKey(NamedTuple):
    """What changes when the live embeddings do."""

    version: str | None
    movies: int  # movies with an embedding
    updated_at: datetime | None  # the newest movies.updated_at


def embeddings_key(conn: psycopg.Connection[Any]) -> EmbeddingsKey:
    """The live embeddings' `EmbeddingsKey`, as the database has it now."""
    key = conn.execute(
        "SELECT (SELECT version FROM models WHERE status = 'live'), count(embedding), max(updated_at) "
        "FROM movies"
    ).fetchone()
    assert key is not None
    return EmbeddingsKey(*key)


def backfill_feedback(conn: psycopg.Connection[Any]) -> int:
    """Fill the positions of recent feedback whose serve log has landed since; how many."""
    with conn.transaction():
        return conn.execute(BACKFILL_FEEDBACK).rowcount


class SpeedLayerSink:
    """One process's Postgres and Redis connections, kept across batches."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        self._database_url = database_url
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._conn: psycopg.Connection[Any] | None = None

    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._database_url)
            register_vector(self._conn)
        return self._conn

    def reset(self) -> None:
        """Drop a connection that failed: the next call reconnects (Spark re-runs the batch)."""
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def write_batch(
        self, events: list[dict[str, Any]], feedback: list[dict[str, Any]], model: ModelEmbeddings
    ) -> dict[str, int]:
        """Write some users' events in one transaction; then invalidate their cache keys."""
        if not events:
            return {"events": 0}
        users = sorted({e["user_id"] for e in events})
        try:
            stats = self._write(events, feedback, users, model)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self.reset()
            raise
        self.invalidate(users)
        stats["pending_trimmed"] = trim_applied(self._redis, events)
        return stats

    def invalidate(self, users: list[int]) -> None:
        """Delete the users' lists and bump their generations, so a list computed from data
        read before this commit is not cached after the delete (RecommendationCache.set)."""
        with self._redis.pipeline(transaction=True) as pipe:
            for user in users:
                pipe.incr(generation_key(user))
                pipe.expire(generation_key(user), GENERATION_TTL_SECONDS)
            pipe.delete(*[recommendations_key(u) for u in users])
            pipe.execute()

    def _write(
        self,
        events: list[dict[str, Any]],
        feedback: list[dict[str, Any]],
        users: list[int],
        model: ModelEmbeddings,
    ) -> dict[str, int]:
        conn = self.connection()
        with conn.transaction():
            with conn.cursor() as cur:
                lock_users(cur, users)
                events, feedback = deleted_users.drop_erased(cur, events, feedback)
                # Exactly the rows inserted (not the replayed ones) join the users' histories.
                inserted = interactions.insert_events(cur, events)
                if feedback:
                    cur.executemany(INSERT_FEEDBACK, feedback)
                rows = cur.execute(USER_ITEMS, (users,)).fetchall()
                profiles = compute_profiles(rows, model)
                user_profiles.upsert_folded(
                    cur,
                    (
                        (
                            p.user_id,
                            p.vector,
                            p.interaction_count,
                            p.rating_count,
                            model.version if p.vector is not None else None,
                        )
                        for p in profiles
                    ),
                )
        return {
            "events": len(events),
            "inserted": inserted,
            "users": len(users),
            "vectors": sum(p.vector is not None for p in profiles),
            "feedback": len(feedback),
        }

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._redis.close()


class EmbeddingsTracker:
    """The driver's copy of the live embeddings, reloaded only when `embeddings_key` changes."""

    def __init__(self) -> None:
        self.model: ModelEmbeddings | None = None

    def current(self, conn: psycopg.Connection[Any]) -> tuple[ModelEmbeddings, bool]:
        """The live embeddings, and whether they changed since the last call."""
        with conn.transaction():
            key = embeddings_key(conn)
            if self.model is not None and self.model.key == key:
                return self.model, False
            self.model = load_embeddings(conn, key, self.model)
        log.info(
            "loaded embeddings",
            extra={"model": self.model.version, "movies": len(self.model.index), "read": self.model.loaded},
        )
        return self.model, True
