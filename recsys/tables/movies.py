"""movies: the catalogue and, per movie, the live model's embedding; every write to it.

The importer and the CatalogueService (hosted by the Recommender) own the catalogue columns
(title, year, genres); the CatalogueService alone retires and restores movies (`retired_at`) and
gives a movie it creates a cold-start embedding (recsys.coldstart) in the live model's space.
The importer adds the imported events to `popularity`; publishing a model sets every movie's
embedding and popularity from the model (None and 0 for a movie the model does not know), so
the served embeddings are one model's.
Readers: the Recommender (serving, fold-in of pending events), the ProfileService (recent
interactions), the Event service (the catalogue check), the streaming sink (fold-in).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg
    import numpy as np
    import psycopg

# What the CatalogueService answers with: the Movie fields, the retired flag.
_RETURNING = "RETURNING movie_id, title, year, genres, popularity, retired_at IS NOT NULL AS retired"

_CREATE = f"""
    INSERT INTO movies (movie_id, title, year, genres, embedding, model_version)
    VALUES (nextval('movie_id_seq'), $1, $2, $3, $4, $5)
    {_RETURNING}
"""

# A NULL argument keeps the column (the handler resolves the update mask into them).
_UPDATE = f"""
    UPDATE movies SET
        title = CASE WHEN $2 THEN $3 ELSE title END,
        year = CASE WHEN $4 THEN $5 ELSE year END,
        genres = CASE WHEN $6 THEN $7 ELSE genres END,
        updated_at = now()
    WHERE movie_id = $1
    {_RETURNING}
"""

# A movie embedded by cold start, not by training: not in its model's trained item factors.
_SET_COLD_EMBEDDING = """
    UPDATE movies m SET embedding = $2, model_version = $3, updated_at = now()
    WHERE m.movie_id = $1
      AND NOT EXISTS (SELECT 1 FROM model_item_factors f
                      WHERE f.model_version = m.model_version AND f.movie_id = m.movie_id)
"""

_RETIRE = f"""
    UPDATE movies SET retired_at = COALESCE(retired_at, now()), updated_at = now()
    WHERE movie_id = $1
    {_RETURNING}
"""

_RESTORE = f"""
    UPDATE movies SET retired_at = NULL, updated_at = now()
    WHERE movie_id = $1
    {_RETURNING}
"""


async def create(
    conn: asyncpg.Connection | asyncpg.Pool,
    title: str,
    year: int | None,
    genres: Sequence[str],
    embedding: np.ndarray[Any, Any] | None,
    model_version: str | None,
) -> asyncpg.Record:
    """A new movie (id from movie_id_seq) with its cold-start embedding; returns its row."""
    row = await conn.fetchrow(_CREATE, title, year, list(genres), embedding, model_version)
    assert row is not None
    return row


async def update(
    conn: asyncpg.Connection | asyncpg.Pool,
    movie_id: int,
    *,
    title: tuple[bool, str | None],
    year: tuple[bool, int | None],
    genres: tuple[bool, Sequence[str]],
) -> asyncpg.Record | None:
    """Change the catalogue fields whose flag is set to the value beside it; None if no such movie."""
    return await conn.fetchrow(
        _UPDATE, movie_id, title[0], title[1], year[0], year[1], genres[0], list(genres[1])
    )


async def set_cold_embedding(
    conn: asyncpg.Connection | asyncpg.Pool,
    movie_id: int,
    embedding: np.ndarray[Any, Any] | None,
    model_version: str | None,
) -> bool:
    """Replace a movie's cold-start embedding (never a trained one); True if it was replaced."""
    status = await conn.execute(_SET_COLD_EMBEDDING, movie_id, embedding, model_version)
    return bool(status.endswith(" 1"))


async def retire(conn: asyncpg.Connection | asyncpg.Pool, movie_id: int) -> asyncpg.Record | None:
    """Withdraw a movie from serving (idempotent); None if no such movie."""
    return await conn.fetchrow(_RETIRE, movie_id)


async def restore(conn: asyncpg.Connection | asyncpg.Pool, movie_id: int) -> asyncpg.Record | None:
    """Serve a retired movie again (idempotent); None if no such movie."""
    return await conn.fetchrow(_RESTORE, movie_id)

# From the temporary table import_movies (movie_id, title, year, genres).
_UPSERT_IMPORTED = """
    INSERT INTO movies AS m (movie_id, title, year, genres)
    SELECT movie_id, title, year, genres FROM import_movies
    ON CONFLICT (movie_id) DO UPDATE
       SET title = EXCLUDED.title, year = EXCLUDED.year, genres = EXCLUDED.genres,
           updated_at = now()
     WHERE (m.title, m.year, m.genres)
           IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.year, EXCLUDED.genres)
    RETURNING (xmax = 0) AS inserted
"""

_PUBLISH_MODEL = """
    UPDATE movies m SET
        embedding = f.embedding,
        popularity = COALESCE(f.popularity, 0),
        model_version = %(v)s,
        updated_at = now()
    FROM movies m2
    LEFT JOIN model_item_factors f ON f.movie_id = m2.movie_id AND f.model_version = %(v)s
    WHERE m.movie_id = m2.movie_id
"""


def upsert_imported(cur: psycopg.Cursor[Any]) -> tuple[int, int]:
    """The movies of the temporary table import_movies: new ones inserted, changed ones
    updated (unchanged ones untouched); returns (inserted, updated)."""
    cur.execute(_UPSERT_IMPORTED)
    flags = [row[0] for row in cur.fetchall()]
    return sum(flags), len(flags) - sum(flags)


def add_popularity(cur: psycopg.Cursor[Any], events_table: str) -> None:
    """Each movie's popularity grows by its events in `events_table` (a table with movie_id)."""
    cur.execute(
        f"""
        UPDATE movies AS m SET popularity = m.popularity + c.n, updated_at = now()
          FROM (SELECT movie_id, count(*) AS n FROM {events_table} GROUP BY movie_id) AS c
         WHERE m.movie_id = c.movie_id
        """
    )


def publish_model(conn: psycopg.Connection[Any], version: str) -> None:
    """Every movie's embedding and popularity become `version`'s (model_item_factors)."""
    conn.execute(_PUBLISH_MODEL, {"v": version})


# Movies whose embedding no training learned: a cold-start one (CreateMovie, UpdateMovie).
_COLD_STARTED = """
    SELECT m.movie_id, m.genres, m.year FROM movies m
    WHERE m.embedding IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM model_item_factors f
                      WHERE f.model_version = m.model_version AND f.movie_id = m.movie_id)
"""

# Only a movie the published version did not learn (publish_model left it NULL).
_SET_UNLEARNED = """
    UPDATE movies SET embedding = %s::vector, model_version = %s, updated_at = now()
    WHERE movie_id = %s AND embedding IS NULL
"""


def cold_started(conn: psycopg.Connection[Any]) -> list[tuple[int, list[str], int | None]]:
    """(movie_id, genres, year) of the movies served with a cold-start embedding."""
    return [(r[0], list(r[1] or ()), r[2]) for r in conn.execute(_COLD_STARTED).fetchall()]


def embed_unlearned(conn: psycopg.Connection[Any], version: str, rows: Sequence[tuple[int, str]]) -> None:
    """(movie_id, embedding as pgvector text) for movies `version` did not learn: the cold-start
    embeddings of its map, so a movie nobody has watched yet stays served after a publish."""
    with conn.cursor() as cur:
        cur.executemany(_SET_UNLEARNED, [(vec, version, movie_id) for movie_id, vec in rows])


# The stream's item fold-in (batch.streaming.items): never over a trained embedding.
_SET_SOLVED = """
    UPDATE movies m SET embedding = s.embedding, model_version = %s, updated_at = now()
      FROM unnest(%s::bigint[], %s::vector[]) AS s(movie_id, embedding)
     WHERE m.movie_id = s.movie_id
       AND NOT EXISTS (SELECT 1 FROM model_item_factors f
                        WHERE f.model_version = m.model_version AND f.movie_id = m.movie_id)
"""


def set_solved_embeddings(
    cur: psycopg.Cursor[Any], solved: Iterable[tuple[int, np.ndarray[Any, Any]]], model_version: str | None
) -> None:
    """Embeddings the speed layer solved for movies the live model did not train."""
    pairs = list(solved)
    if pairs:
        cur.execute(_SET_SOLVED, (model_version, [m for m, _ in pairs], [v for _, v in pairs]))
