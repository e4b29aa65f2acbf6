"""Load a validated `Dataset` into PostgreSQL in one transaction.

COPY into temporary tables, then upsert: movies by id (title/year/genres updated when they
changed, embeddings and model columns untouched), interactions by event id (existing ones
are kept), then recompute `movies.popularity` (interactions per movie) for the imported
movies and the `user_profiles` counts for the imported users. Any failure rolls the whole
import back. Imports are serialised with an advisory lock, so two at once cannot interleave.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from tqdm import tqdm

from recsys.importer.model import Dataset

# Any fixed key; pg_advisory_xact_lock releases it at commit or rollback.
_LOCK_KEY = 0x7265637379730001


class LoadError(RuntimeError):
    """The database refused the import (unreachable, not migrated, constraint violated)."""


@dataclass(frozen=True)
class LoadResult:
    source: str
    movies: int
    interactions: int
    users: int
    movies_inserted: int
    movies_updated: int
    interactions_inserted: int
    seconds: float

    def summary(self) -> str:
        return (
            f"{self.source}: {self.movies} movies ({self.movies_inserted} new, "
            f"{self.movies_updated} updated), {self.interactions} interactions "
            f"({self.interactions_inserted} new), {self.users} users in {self.seconds:.1f} s"
        )


def psycopg_url(database_url: str) -> str:
    """Accept SQLAlchemy-style URLs (postgresql+psycopg://) as well as plain ones."""
    scheme, sep, rest = database_url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}" if sep else database_url


def _copy(
    cur: psycopg.Cursor[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    total: int,
    progress: bool,
) -> None:
    bar = tqdm(
        total=total,
        desc=f"load {table.removeprefix('import_')}",
        unit=" rows",
        unit_scale=True,
        leave=False,
        disable=not progress,
    )
    with bar, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for n, row in enumerate(rows, 1):
            copy.write_row(row)
            if n % 10_000 == 0:
                bar.update(10_000)
        bar.update(total - bar.n)


def load(dataset: Dataset, database_url: str, progress: bool = False) -> LoadResult:
    started = time.monotonic()
    users = sorted(dataset.user_ids)
    try:
        conn = psycopg.connect(psycopg_url(database_url), connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise LoadError(f"cannot connect to the database: {str(exc).strip()}") from None
    try:
        with conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            cur.execute(
                "CREATE TEMP TABLE import_movies (movie_id bigint, title text, year integer, "
                "genres text[]) ON COMMIT DROP"
            )
            cur.execute(
                "CREATE TEMP TABLE import_events (event_id text, user_id bigint, movie_id bigint, "
                "event_type text, rating real, occurred_at timestamptz) ON COMMIT DROP"
            )
            _copy(
                cur,
                "import_movies",
                ("movie_id", "title", "year", "genres"),
                ((m.movie_id, m.title, m.year, list(m.genres)) for m in dataset.movies),
                len(dataset.movies),
                progress,
            )
            _copy(
                cur,
                "import_events",
                ("event_id", "user_id", "movie_id", "event_type", "rating", "occurred_at"),
                (
                    (i.event_id, i.user_id, i.movie_id, i.event_type, i.rating, i.occurred_at)
                    for i in dataset.interactions
                ),
                len(dataset.interactions),
                progress,
            )

            # Temporary tables have no statistics until analysed; the joins below need them.
            cur.execute("ANALYZE import_movies")
            cur.execute("ANALYZE import_events")

            cur.execute(
                """
                INSERT INTO movies AS m (movie_id, title, year, genres)
                SELECT movie_id, title, year, genres FROM import_movies
                ON CONFLICT (movie_id) DO UPDATE
                   SET title = EXCLUDED.title, year = EXCLUDED.year, genres = EXCLUDED.genres,
                       updated_at = now()
                 WHERE (m.title, m.year, m.genres)
                       IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.year, EXCLUDED.genres)
                RETURNING (xmax = 0) AS inserted
                """
            )
            flags = [row[0] for row in cur.fetchall()]
            movies_inserted = sum(flags)
            movies_updated = len(flags) - movies_inserted

            cur.execute(
                """
                INSERT INTO rt_user_interactions
                       (event_id, user_id, movie_id, event_type, rating, occurred_at)
                SELECT event_id, user_id, movie_id, event_type, rating, occurred_at
                  FROM import_events
                ON CONFLICT (event_id) DO NOTHING
                """
            )
            interactions_inserted = cur.rowcount

            # Popularity = interactions per movie, for every imported movie.
            cur.execute(
                """
                UPDATE movies AS m SET popularity = c.n, updated_at = now()
                  FROM (SELECT t.movie_id, count(i.movie_id) AS n
                          FROM import_movies t
                          LEFT JOIN rt_user_interactions i ON i.movie_id = t.movie_id
                         GROUP BY t.movie_id) AS c
                 WHERE m.movie_id = c.movie_id AND m.popularity <> c.n
                """
            )
            # Profiles (counts only; vectors come from the model) for every imported user.
            cur.execute(
                """
                INSERT INTO user_profiles AS p (user_id, interaction_count, rating_count)
                SELECT i.user_id, count(*), count(i.rating)
                  FROM rt_user_interactions i
                 WHERE i.user_id IN (SELECT DISTINCT user_id FROM import_events)
                 GROUP BY i.user_id
                ON CONFLICT (user_id) DO UPDATE
                   SET interaction_count = EXCLUDED.interaction_count,
                       rating_count = EXCLUDED.rating_count, updated_at = now()
                 WHERE (p.interaction_count, p.rating_count)
                       IS DISTINCT FROM (EXCLUDED.interaction_count, EXCLUDED.rating_count)
                """
            )
            cur.execute("ANALYZE movies")
            cur.execute("ANALYZE rt_user_interactions")
            cur.execute("ANALYZE user_profiles")
    except pg_errors.UndefinedTable as exc:
        raise LoadError(
            f"the database has no recsys schema ({str(exc).strip()}); run recsys-migrate first"
        ) from None
    except psycopg.Error as exc:
        raise LoadError(f"import rolled back: {str(exc).strip()}") from None
    finally:
        conn.close()
    return LoadResult(
        source=dataset.source,
        movies=len(dataset.movies),
        interactions=len(dataset.interactions),
        users=len(users),
        movies_inserted=movies_inserted,
        movies_updated=movies_updated,
        interactions_inserted=interactions_inserted,
        seconds=time.monotonic() - started,
    )
