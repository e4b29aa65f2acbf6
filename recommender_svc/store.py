"""Data access of the RecommenderService: movies, interactions, batch lists, the live model.

Every list is fetched in one query (no N+1); asyncpg prepares and caches each statement
per connection, so repeated serves skip planning.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from recommender_svc.ranking import Candidate
from recsys.domain.events import DISLIKE, is_liked, liked_sql
from recsys.domain.movies import MOVIE_FIELDS
from recsys.domain.popularity import DEFAULT_POPULARITY_BOOST, depth, prior_sql
from recsys.domain.recency import (
    DEFAULT_RECENT_WEIGHT,
    DEFAULT_SEQUENCE_WEIGHT,
    LATEST_LIKED,
    SEQUENCE_CONTEXT,
    Liked,
    blend,
)
from recsys.domain.vectors import as_array, to_array

# hnsw.ef_search bounds: at least the number of rows asked for (else HNSW returns fewer).
MIN_EF_SEARCH = 40
MAX_EF_SEARCH = 1000

_MOVIE_COLUMNS = ", ".join(f"m.{c}" for c in MOVIE_FIELDS)

# Embeddings of liked movies only: the reasons quote those (recsys.domain.events.is_liked).
_INTERACTIONS_SQL = f"""
SELECT i.movie_id, i.event_type, i.rating, m.title, m.genres,
       CASE WHEN {liked_sql("i.event_type", "i.rating")} THEN m.embedding END AS embedding
FROM rt_user_interactions i LEFT JOIN movies m USING (movie_id)
WHERE i.user_id = $1
ORDER BY i.occurred_at DESC
LIMIT $2
"""

# Everything the user has ever interacted with, archived or not (user_items, recsys/tables/user_items.py):
# one index range of the primary key, bounded by the catalogue rather than by the history.
_SEEN_SQL = "SELECT coalesce(array_agg(movie_id), '{}') FROM user_items WHERE user_id = $1"

# `retired_at IS NULL` matches the partial HNSW index (migration 0006): retired movies are
# not in it at all, so every tier and similar-movies leave them out at no cost. The index
# finds the $4 nearest; the live model's popularity prior re-ranks them (recsys.domain.popularity:
# boost $5, its count of each movie from model_item_factors of version $7, the typical $8 for a
# movie it did not train) and the best $6 are returned, only those with their embeddings. Each
# comes with its co-visitation with the movies $9 (model_covisits of version $7, summed; 0 for
# none), which `nearest` re-ranks with (recsys.domain.recency).
_NEAREST_SQL = f"""
WITH nearest AS (
    SELECT m.movie_id, -(m.embedding <#> $1) AS similarity
    FROM movies m
    WHERE m.embedding IS NOT NULL AND m.retired_at IS NULL
      AND m.movie_id <> ALL($2::bigint[])
      AND (cardinality($3::text[]) = 0 OR m.genres && $3::text[])
    ORDER BY m.embedding <#> $1
    LIMIT $4
),
covisited AS (
    SELECT neighbour_id AS movie_id, sum(weight)::float8 AS covisit
    FROM model_covisits
    WHERE model_version = $7 AND movie_id = ANY($9::bigint[])
    GROUP BY neighbour_id
)
SELECT {_MOVIE_COLUMNS}, m.embedding,
       n.similarity * {prior_sql("coalesce(f.popularity, $8::float8)", "$5")} AS score,
       coalesce(c.covisit, 0) AS covisit
FROM nearest n
JOIN movies m USING (movie_id)
LEFT JOIN model_item_factors f ON f.model_version = $7 AND f.movie_id = n.movie_id
LEFT JOIN covisited c ON c.movie_id = n.movie_id
ORDER BY score DESC, m.movie_id
LIMIT $6
"""

_BATCH_SQL = f"""
SELECT {_MOVIE_COLUMNS}, m.embedding, b.score::float8 AS score
FROM batch_recommendations b JOIN movies m USING (movie_id)
WHERE b.model_version = $1 AND b.user_id = $2 AND m.retired_at IS NULL
  AND b.movie_id <> ALL($3::bigint[])
  AND (cardinality($4::text[]) = 0 OR m.genres && $4::text[])
ORDER BY b.rank
LIMIT $5
"""

_POPULAR_SQL = f"""
SELECT {_MOVIE_COLUMNS}, m.popularity::float8 AS score
FROM movies m
WHERE m.movie_id <> ALL($1::bigint[]) AND m.retired_at IS NULL
  AND (cardinality($2::text[]) = 0 OR m.genres && $2::text[])
ORDER BY m.popularity DESC, m.movie_id
LIMIT $3
"""

_MOVIE_SQL = f"""
SELECT {_MOVIE_COLUMNS}, m.retired_at IS NOT NULL AS retired, m.embedding, m.model_version
FROM movies m WHERE m.movie_id = $1
"""

# The embeddings of the movies the user gave a positive summed signal most recently, newest
# first: the short-term part of the realtime query (recsys.domain.recency). The freshness path
# picks the same rows in Python when the user has pending events (recommender_svc.freshness).
_RECENT_SQL = """
SELECT u.movie_id, m.embedding
FROM user_items u JOIN movies m USING (movie_id)
WHERE u.user_id = $1 AND u.signal > 0 AND u.last_at IS NOT NULL AND m.embedding IS NOT NULL
ORDER BY u.last_at DESC, u.movie_id DESC
LIMIT $2
"""

_RETIRED_SQL = "SELECT coalesce(array_agg(movie_id), '{}') FROM movies WHERE retired_at IS NOT NULL"

_LIVE_MODEL_SQL = "SELECT version, params FROM models WHERE status = 'live'"

_TYPICAL_POPULARITY_SQL = """
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY popularity)
FROM model_item_factors WHERE model_version = $1
"""

_LIST_SQL = f"""
SELECT {_MOVIE_COLUMNS}, m.retired_at IS NOT NULL AS retired
FROM movies m
WHERE ($6 OR m.retired_at IS NULL)
  AND (cardinality($1::text[]) = 0 OR (lower(m.title) LIKE $1[1] AND lower(m.title) LIKE ALL($1::text[])))
  AND ($2 = '' OR m.genres @> ARRAY[$2])
  AND ($3::bigint IS NULL OR m.popularity < $3 OR (m.popularity = $3 AND m.movie_id > $4))
ORDER BY m.popularity DESC, m.movie_id
LIMIT $5
"""


def ef_search_for(k: int) -> int:
    """The hnsw.ef_search for a query of k rows that are post-filtered."""
    return max(MIN_EF_SEARCH, min(MAX_EF_SEARCH, 2 * k))


def candidate(row: asyncpg.Record, score: float | None = None) -> Candidate:
    return Candidate(
        movie_id=row["movie_id"],
        score=float(row["score"] if score is None else score),
        title=row["title"],
        year=row["year"] or 0,
        genres=tuple(row["genres"] or ()),
        popularity=row["popularity"],
    )


@dataclass(frozen=True)
class History:
    """What the cascade needs of a user: every movie seen (whole history), and, from the
    recent window, the liked movies and genres its reasons quote."""

    seen: frozenset[int]
    liked: list[tuple[str, np.ndarray[Any, Any]]]
    genre_lists: list[Sequence[str]]


@dataclass(frozen=True)
class LiveModel:
    """What serving needs of the live model: its version ('' when none), its popularity
    prior (recsys.domain.popularity): the boost, and the typical count that stands for the
    count of a movie it did not train; and how far the movies liked last steer it
    (recsys.domain.recency): the query's lean and co-visitation's re-ranking."""

    version: str
    popularity_boost: float = 0.0
    typical_popularity: float = 1.0
    recent_weight: float = 0.0
    sequence_weight: float = 0.0

    @classmethod
    def of(cls, row: asyncpg.Record | None, typical_popularity: float = 1.0) -> LiveModel:
        if row is None:
            return cls("")
        params = row["params"]
        if isinstance(params, str):
            params = json.loads(params)
        params = params or {}
        boost = params.get("popularity_boost", DEFAULT_POPULARITY_BOOST)
        recent = params.get("recent_weight", DEFAULT_RECENT_WEIGHT)
        sequence = params.get("sequence_weight", DEFAULT_SEQUENCE_WEIGHT)
        return cls(row["version"], float(boost), typical_popularity, float(recent), float(sequence))


@dataclass(frozen=True)
class Ranked:
    """Candidates in rank order, with the embedding of each (None when it has none)."""

    items: list[Candidate]
    embeddings: list[np.ndarray[Any, Any] | None]


class MovieStore:
    """Queries of the serving path on one asyncpg pool."""

    # Recent rows read for the reasons only (liked movies, genres); "seen" is the whole history.
    RECENT_LIMIT = 500
    LIKED_LIMIT = 50
    LIVE_MODEL_TTL = 5.0

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._live: tuple[float, LiveModel] | None = None

    async def live_model(self) -> str:
        """The live model's version ('' when none), re-read at most every few seconds."""
        return (await self.live()).version

    async def live(self) -> LiveModel:
        """The live model, re-read at most every few seconds (its typical count once a version)."""
        now = time.monotonic()
        if self._live is not None and now - self._live[0] < self.LIVE_MODEL_TTL:
            return self._live[1]
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(_LIVE_MODEL_SQL)
            previous = self._live[1] if self._live is not None else None
            if row is not None and (previous is None or previous.version != row["version"]):
                typical = await conn.fetchval(_TYPICAL_POPULARITY_SQL, row["version"])
            else:
                typical = previous.typical_popularity if previous is not None else 1.0
        self._live = (now, LiveModel.of(row, float(typical or 1.0)))
        return self._live[1]

    async def seen(self, user_id: int) -> frozenset[int]:
        """Every movie the user has interacted with, archived or not."""
        async with self.pool.acquire() as conn:
            return frozenset(await conn.fetchval(_SEEN_SQL, user_id))

    async def history(self, user_id: int) -> History:
        async with self.pool.acquire() as conn:
            seen_ids = await conn.fetchval(_SEEN_SQL, user_id)
            rows = await conn.fetch(_INTERACTIONS_SQL, user_id, self.RECENT_LIMIT)
        # The window's rows too: a row written without its user_items row (by an older
        # writer) is still seen.
        seen = frozenset(seen_ids).union(r["movie_id"] for r in rows)
        liked: list[tuple[str, np.ndarray[Any, Any]]] = []
        liked_ids: set[int] = set()
        genre_lists: list[Sequence[str]] = []
        for r in rows:
            if r["event_type"] != DISLIKE and r["genres"]:
                genre_lists.append(r["genres"])
            if (
                r["embedding"] is not None
                and is_liked(r["event_type"], r["rating"])
                and r["movie_id"] not in liked_ids
                and len(liked) < self.LIKED_LIMIT
            ):
                liked_ids.add(r["movie_id"])
                liked.append((r["title"], to_array(r["embedding"])))
        return History(seen, liked, genre_lists)

    async def recent(self, user_id: int, n: int = LATEST_LIKED) -> list[Liked]:
        """The n movies the user liked last, newest first, with their embeddings."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_RECENT_SQL, user_id, n)
        return [Liked(r["movie_id"], to_array(r["embedding"])) for r in rows]

    async def nearest(
        self,
        vector: np.ndarray[Any, Any],
        exclude: Collection[int],
        genres: Collection[str],
        k: int,
        live: LiveModel | None = None,
        context: Sequence[int] = (),
    ) -> Ranked:
        """The k movies of highest inner product with `vector` by the HNSW index, re-ranked by
        the popularity prior of the `live` model (recsys.domain.popularity) when given, and by
        co-visitation with the `context` movies (the user's latest liked, newest first) under
        its sequence weight (recsys.domain.recency)."""
        live = live or LiveModel("")
        covisiting = live.sequence_weight > 0 and bool(context)
        fetch = depth(k, live.popularity_boost, live.sequence_weight if covisiting else 0.0)
        async with self.pool.acquire() as conn:
            # A session-level SET, not SET LOCAL in a transaction: 2 round trips instead of 4
            # (BEGIN, SET LOCAL, SELECT, COMMIT) on the cache-miss path. It cannot leak: the
            # pool's reset on release runs RESET ALL, and every HNSW query here sets its own
            # value first. The value is an int.
            await conn.execute(f"SET hnsw.ef_search = {ef_search_for(fetch + len(exclude))}")
            rows = await conn.fetch(
                _NEAREST_SQL, vector, list(exclude), list(genres), fetch, live.popularity_boost,
                fetch if covisiting else k, live.version, live.typical_popularity,
                list(context[:SEQUENCE_CONTEXT]) if covisiting else [],
            )
        if covisiting and rows:
            ranked = blend([r["score"] for r in rows], [r["covisit"] for r in rows], live.sequence_weight)
            order = np.argsort(-ranked, kind="stable")[:k]
            return Ranked([candidate(rows[i], float(ranked[i])) for i in order],
                          [as_array(rows[i]["embedding"]) for i in order])
        return Ranked([candidate(r) for r in rows], [as_array(r["embedding"]) for r in rows])

    async def batch(
        self, model_version: str, user_id: int, exclude: Collection[int], genres: Collection[str], k: int
    ) -> Ranked:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_BATCH_SQL, model_version, user_id, list(exclude), list(genres), k)
        return Ranked([candidate(r) for r in rows], [as_array(r["embedding"]) for r in rows])

    async def popular(self, exclude: Collection[int], genres: Collection[str], k: int) -> list[Candidate]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_POPULAR_SQL, list(exclude), list(genres), k)
        return [candidate(r) for r in rows]

    async def movie(self, movie_id: int) -> asyncpg.Record | None:
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(_MOVIE_SQL, movie_id)

    async def retired(self) -> frozenset[int]:
        """The ids of the retired movies (recommender_svc.retired)."""
        async with self.pool.acquire() as conn:
            return frozenset(await conn.fetchval(_RETIRED_SQL))

    async def list_movies(
        self,
        patterns: list[str],
        genre: str,
        after: tuple[int, int] | None,
        k: int,
        *,
        include_retired: bool = False,
    ) -> list[asyncpg.Record]:
        """A page of the catalogue (rows of MOVIE_FIELDS and `retired`), most popular first."""
        popularity, movie_id = after if after is not None else (None, 0)
        async with self.pool.acquire() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(
                _LIST_SQL, patterns, genre, popularity, movie_id, k, include_retired
            )
        return rows
