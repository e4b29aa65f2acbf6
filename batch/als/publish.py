"""Load: stage a version beside the live one, switch in one transaction, roll back, invalidate.

Publishing never leaves readers with half a model:

1. `stage_items` writes the version's item embeddings (+ popularity) to `model_item_factors`,
   `stage_covisits` its co-visits to `model_covisits`, `stage_users` its user vectors to
   `model_user_factors` and its top-N lists to `batch_recommendations` (from Spark tasks,
   batch.als.stage_users), all keyed by version, beside the live version's rows; nobody reads
   them yet.
2. `switch` then, in ONE transaction, copies the staged rows into `movies.embedding` /
   `movies.popularity` / `user_profiles.preference_vector` (stamping `model_version`), folds in
   the users with a history the version did not train on (`fold_in_untrained`), and flips
   `models` (old live -> retired, new -> live). A reader sees the old model or the new one.
3. The previous versions' staged rows stay, so `rollback` is the same switch to an older version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import redis
from pgvector.psycopg import register_vector

from batch.foldin import UserStep, gram
from batch.streaming.sink import ModelEmbeddings, compute_profiles
from recsys import coldstart
from recsys.cache import recommendations_key
from recsys.domain.vectors import to_array
from recsys.tables import deleted_users, movies, user_profiles

# Serialises publishers (switch, rollback) across processes.
_PUBLISH_LOCK = 72_400_501
# Staged versions kept besides the live one (rollback targets).
KEEP_VERSIONS = 3
# The rows staged per version, dropped together.
VERSION_TABLES = ("model_item_factors", "model_user_factors", "batch_recommendations", "model_covisits")


@contextmanager
def connect(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url) as conn:
        register_vector(conn)
        yield conn


def _vec(row: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in row) + "]"


@dataclass(frozen=True)
class ModelRow:
    version: str
    status: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    artifact_uri: str | None


def get_model(conn: psycopg.Connection[Any], version: str) -> ModelRow | None:
    row = conn.execute(
        "SELECT version, status, params, metrics, artifact_uri FROM models WHERE version = %s",
        (version,),
    ).fetchone()
    return ModelRow(*row) if row else None


def live_model(conn: psycopg.Connection[Any]) -> ModelRow | None:
    row = conn.execute(
        "SELECT version, status, params, metrics, artifact_uri FROM models WHERE status = 'live'"
    ).fetchone()
    return ModelRow(*row) if row else None


def record_model(
    conn: psycopg.Connection[Any],
    version: str,
    status: str,
    params: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    artifact_uri: str | None = None,
    trained_on: dict[str, Any] | None = None,
    cold_start: dict[str, Any] | None = None,
) -> None:
    """Insert or update a `models` row; JSON fields given are merged into the stored ones.

    `cold_start` is the version's genre/year -> item-factor map (recsys.coldstart.FeatureMap).
    """
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO models (version, status, params, metrics, artifact_uri, trained_on, cold_start)
            VALUES (%(v)s, %(s)s, %(p)s, %(m)s, %(a)s, %(t)s, %(c)s)
            ON CONFLICT (version) DO UPDATE SET
                status = EXCLUDED.status,
                params = models.params || EXCLUDED.params,
                metrics = models.metrics || EXCLUDED.metrics,
                artifact_uri = COALESCE(EXCLUDED.artifact_uri, models.artifact_uri),
                trained_on = models.trained_on || EXCLUDED.trained_on,
                cold_start = COALESCE(EXCLUDED.cold_start, models.cold_start)
            """,
            {
                "v": version,
                "s": status,
                "p": json.dumps(params or {}),
                "m": json.dumps(metrics or {}),
                "a": artifact_uri,
                "t": json.dumps(trained_on or {}),
                "c": None if cold_start is None else json.dumps(cold_start),
            },
        )


def staged_items(conn: psycopg.Connection[Any], version: str) -> tuple[np.ndarray, np.ndarray]:
    """A staged version's movie ids and (64-wide) embeddings."""
    rows = conn.execute(
        "SELECT movie_id, embedding FROM model_item_factors WHERE model_version = %s ORDER BY movie_id",
        (version,),
    ).fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    mat = np.array([to_array(r[1]) for r in rows], dtype=np.float32)
    return ids, mat.reshape(len(ids), -1)


def catalogue_ids(conn: psycopg.Connection[Any]) -> np.ndarray:
    """The movies a version's rows may name: only those in the catalogue are staged."""
    return np.array([r[0] for r in conn.execute("SELECT movie_id FROM movies").fetchall()], dtype=np.int64)


def stage_items(
    conn: psycopg.Connection[Any], version: str, items: pd.DataFrame, item_vectors: np.ndarray
) -> None:
    """Start (or restart) staging a version: drop its rows, write its item embeddings.

    `items` has movie_id and popularity aligned with `item_vectors`. The users follow with
    `stage_users`, from the driver or from Spark tasks (batch.als.stage_users).
    """
    with conn.transaction():
        known = set(catalogue_ids(conn).tolist())
        for table in VERSION_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE model_version = %s", (version,))
        with conn.cursor().copy(
            "COPY model_item_factors (model_version, movie_id, embedding, popularity) FROM STDIN"
        ) as copy:
            for movie_id, pop, vec in zip(
                items["movie_id"].to_numpy(), items["popularity"].to_numpy(), item_vectors, strict=True
            ):
                if int(movie_id) in known:
                    copy.write_row((version, int(movie_id), _vec(vec), int(pop)))


def stage_covisits(conn: psycopg.Connection[Any], version: str, covisits: pd.DataFrame) -> int:
    """Write the version's co-visits (movie_id, neighbour_id, weight: batch.als.covisit), the
    pairs of catalogue movies only, after `stage_items`. Returns the rows written."""
    known = set(catalogue_ids(conn).tolist())
    written = 0
    with conn.transaction(), conn.cursor().copy(
        "COPY model_covisits (model_version, movie_id, neighbour_id, weight) FROM STDIN"
    ) as copy:
        for movie_id, neighbour_id, weight in covisits[["movie_id", "neighbour_id", "weight"]].itertuples(
            index=False
        ):
            if int(movie_id) in known and int(neighbour_id) in known:
                copy.write_row((version, int(movie_id), int(neighbour_id), float(weight)))
                written += 1
    return written


def stage_users(
    conn: psycopg.Connection[Any],
    version: str,
    users: np.ndarray,
    user_vectors: np.ndarray,
    recs: pd.DataFrame,
    catalogue: np.ndarray,
) -> None:
    """Write some users' vectors and top-N lists of a version, replacing theirs if any.

    Idempotent per set of users, so a Spark task that is re-run writes the same rows again.
    `recs` has user_id, rank, movie_id, score; movies outside `catalogue` are dropped and the
    ranks renumbered.
    """
    ids = [int(u) for u in users]
    with conn.transaction():
        for table in ("model_user_factors", "batch_recommendations"):
            conn.execute(
                f"DELETE FROM {table} WHERE model_version = %s AND user_id = ANY(%s)", (version, ids)
            )
        with conn.cursor().copy(
            "COPY model_user_factors (model_version, user_id, preference_vector) FROM STDIN"
        ) as copy:
            for user_id, vec in zip(ids, user_vectors, strict=True):
                copy.write_row((version, user_id, _vec(vec)))
        recs = recs[recs["movie_id"].isin(catalogue)].copy()
        recs["rank"] = recs.groupby("user_id").cumcount() + 1
        with conn.cursor().copy(
            "COPY batch_recommendations (model_version, user_id, rank, movie_id, score) FROM STDIN"
        ) as copy:
            for row in recs[["user_id", "rank", "movie_id", "score"]].itertuples(index=False):
                copy.write_row((version, int(row[0]), int(row[1]), int(row[2]), float(row[3])))


def fold_in_untrained(conn: psycopg.Connection[Any], version: str) -> int:
    """Inside the switch: a vector of `version` for every user with a history (user_items) the
    version did not train on (history older than the training window, say), folded in over
    that whole history, as the speed layer would at their next event. Returns how many.
    """
    ids, mat = staged_items(conn, version)
    if not len(ids):
        return 0
    row = conn.execute("SELECT params FROM models WHERE version = %s", (version,)).fetchone()
    params = (row[0] if row else None) or {}
    factors = mat.astype(np.float64)
    model = ModelEmbeddings(
        key=(),
        version=version,
        index={int(m): i for i, m in enumerate(ids)},
        factors=factors,
        gram=gram(factors),
        step=UserStep.of(params),
    )
    rows = conn.execute(
        """
        SELECT s.user_id, s.movie_id, s.signal, s.events, s.ratings FROM user_items s
        WHERE NOT EXISTS (SELECT 1 FROM model_user_factors f
                          WHERE f.model_version = %s AND f.user_id = s.user_id)
        """,
        (version,),
    ).fetchall()
    folded = [(p.user_id, _vec(p.vector)) for p in compute_profiles(rows, model) if p.vector is not None]
    with conn.cursor() as cur:
        user_profiles.upsert_vectors(cur, [(user_id, vec, version) for user_id, vec in folded])
    return len(folded)


def re_embed_cold_started(
    conn: psycopg.Connection[Any], version: str, cold: list[tuple[int, list[str], int | None]]
) -> bool:
    """Inside the switch: the movies that were served with a cold-start embedding and that
    `version` did not learn get one from `version`'s own map (recsys.coldstart), instead of
    no embedding at all. Without a map (a version trained before them) they have none until a
    model learns them. Returns whether a map was applied."""
    if not cold:
        return False
    row = conn.execute("SELECT cold_start FROM models WHERE version = %s", (version,)).fetchone()
    if row is None or row[0] is None:
        return False
    feature_map = coldstart.FeatureMap.from_json(row[0])
    movies.embed_unlearned(
        conn, version, [(movie_id, _vec(feature_map.embed(genres, year))) for movie_id, genres, year in cold]
    )
    return True


def _switch(conn: psycopg.Connection[Any], version: str, old_live_status: str) -> str | None:
    """Inside the caller's transaction: make `version` the live model; returns the old live one."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PUBLISH_LOCK,))
    old = conn.execute("SELECT version FROM models WHERE status = 'live' FOR UPDATE").fetchone()
    # Trained on data read before a deletion: the deleted users' staged rows go first.
    deleted_users.drop_staged(conn, version)
    cold = movies.cold_started(conn)
    movies.publish_model(conn, version)
    re_embed_cold_started(conn, version, cold)
    user_profiles.publish_trained(conn, version)
    fold_in_untrained(conn, version)
    # Users the new model does not know and who have no history to fold in lose their vector.
    user_profiles.clear_vectors_of_other_models(conn, version)
    if old is not None and old[0] != version:
        conn.execute("UPDATE models SET status = %s WHERE version = %s", (old_live_status, old[0]))
    conn.execute(
        "UPDATE models SET status = 'live', published_at = now() WHERE version = %s", (version,)
    )
    return old[0] if old else None


def switch(conn: psycopg.Connection[Any], version: str) -> str | None:
    """Publish a staged version atomically; the old live model becomes `retired`."""
    with conn.transaction():
        return _switch(conn, version, "retired")


def rollback(conn: psycopg.Connection[Any]) -> tuple[str, str] | None:
    """Republish the most recently retired version that is still staged.

    The rolled-back model is marked `rejected` (so a second rollback goes further back).
    Returns (from_version, to_version), or None when there is nothing to roll back to.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PUBLISH_LOCK,))
        live = conn.execute("SELECT version FROM models WHERE status = 'live'").fetchone()
        target = conn.execute(
            """
            SELECT m.version FROM models m
            WHERE m.status = 'retired' AND m.published_at IS NOT NULL
              AND EXISTS (SELECT 1 FROM model_item_factors f WHERE f.model_version = m.version)
            ORDER BY m.published_at DESC LIMIT 1
            """
        ).fetchone()
        if target is None:
            return None
        _switch(conn, target[0], "rejected")
        if live is not None:
            conn.execute(
                "UPDATE models SET metrics = metrics || jsonb_build_object('rolled_back_at', now()) "
                "WHERE version = %s",
                (live[0],),
            )
        return (live[0] if live else "", target[0])


def prune(conn: psycopg.Connection[Any], keep: int = KEEP_VERSIONS) -> list[str]:
    """Drop the staged rows of all but the live version and the `keep` latest other versions."""
    with conn.transaction():
        rows = conn.execute(
            """
            SELECT DISTINCT f.model_version, m.status, m.created_at
            FROM model_item_factors f LEFT JOIN models m ON m.version = f.model_version
            ORDER BY m.created_at DESC NULLS LAST
            """
        ).fetchall()
        others = [r[0] for r in rows if r[1] != "live"]
        doomed = others[keep:]
        for version in doomed:
            for table in VERSION_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE model_version = %s", (version,))
        return doomed


def invalidate_cache(redis_url: str, batch: int = 500) -> int:
    """Delete every cached recommendation list (SCAN, never KEYS); returns how many."""
    client = redis.Redis.from_url(redis_url)
    pattern = recommendations_key(0)[:-1] + "*"
    deleted = 0
    try:
        keys: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=batch):
            keys.append(key)
            if len(keys) >= batch:
                deleted += int(client.unlink(*keys))
                keys = []
        if keys:
            deleted += int(client.unlink(*keys))
    finally:
        client.close()
    return deleted
