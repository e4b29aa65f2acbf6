"""movies: the catalogue and, per movie, the live model's embedding; every write to it.

The importer owns the catalogue columns (title, year, genres) and adds the imported events to
`popularity`; publishing a model sets every movie's embedding and popularity from the model
(None and 0 for a movie the model does not know), so the served embeddings are one model's.
Readers: the Recommender (serving, fold-in of pending events), the ProfileService (recent
interactions), the Event service (the catalogue check), the streaming sink (fold-in).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import psycopg

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
