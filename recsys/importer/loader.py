"""Load a validated `Dataset` into PostgreSQL in one transaction.

COPY into temporary tables, then upsert: movies by id (title/year/genres updated when they
changed, embeddings and model columns untouched); interactions older than the recent window
into the archive (`history.Archive`), the others into `rt_user_interactions` by event id
(existing ones are kept); then add the events new to the system to `movies.popularity` and
to the users' histories (`user_items`, recsys.tables.user_items), whose sums are the `user_profiles`
counts (whole history, so a re-import adds nothing). Any failure rolls
the database back (an archive already written keeps its rows; a re-import writes the same
ones again). Imports are serialised with an advisory lock, so two at once cannot interleave.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from tqdm import tqdm

from recsys.importer.history import Archive
from recsys.importer.model import Dataset
from recsys.tables import interactions, movies, user_items, user_profiles

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
    interactions_archived: int
    seconds: float

    def summary(self) -> str:
        return (
            f"{self.source}: {self.movies} movies ({self.movies_inserted} new, "
            f"{self.movies_updated} updated), {self.interactions} interactions "
            f"({self.interactions_inserted} new in the recent window, {self.interactions_archived} "
            f"new in the archive), {self.users} users in {self.seconds:.1f} s"
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


def load(
    dataset: Dataset, database_url: str, progress: bool = False, archive: Archive | None = None
) -> LoadResult:
    """With `archive`, events older than its cutoff go to the archive, not to PostgreSQL."""
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

            movies_inserted, movies_updated = movies.upsert_imported(cur)

            # History first (older than the recent window): into the archive, inside this
            # transaction, so a failure here rolls the database back too. An event that is in
            # PostgreSQL already stays there (the nightly archive task moves it).
            archived_new: set[str] = set()
            skip_recent: set[str] = set()
            if archive is not None:
                old = [i for i in dataset.interactions if archive.is_history(i)]
                cur.execute(
                    "SELECT event_id FROM rt_user_interactions WHERE event_id = ANY(%s)",
                    ([i.event_id for i in old],),
                )
                in_window = {r[0] for r in cur.fetchall()}
                recent = [i for i in dataset.interactions if not archive.is_history(i)]
                filed = archive.file([i for i in old if i.event_id not in in_window], recent)
                archived_new, skip_recent = filed.new_ids, filed.recent_archived
            cur.execute(
                "CREATE TEMP TABLE import_archived (event_id text, is_new boolean) ON COMMIT DROP"
            )
            _copy(
                cur,
                "import_archived",
                ("event_id", "is_new"),
                [*((e, True) for e in archived_new), *((e, False) for e in skip_recent)],
                len(archived_new) + len(skip_recent),
                progress,
            )

            # The events this import adds (inserted into the window, or new to the archive):
            # popularity, profile counts and user histories grow by exactly these, so a
            # re-import adds nothing.
            cur.execute(
                "CREATE TEMP TABLE import_new_events (event_id text, user_id bigint, movie_id bigint, "
                "event_type text, rating real, occurred_at timestamptz) ON COMMIT DROP"
            )
            interactions.insert_imported(cur, archive.cutoff if archive else None)
            cur.execute(
                "SELECT count(*) FILTER (WHERE occurred_at >= %(cutoff)s OR %(cutoff)s::timestamptz "
                "IS NULL), count(*) FROM import_new_events",
                {"cutoff": archive.cutoff if archive else None},
            )
            counted = cur.fetchone()
            interactions_inserted, interactions_new = (counted[0], counted[1]) if counted else (0, 0)

            movies.add_popularity(cur, "import_new_events")
            # The users' whole histories (user_items: seen sets, fold-in signals, counts) grow
            # by exactly the new events; the profile counts are their sums (vectors come from
            # the model), as the streaming sink keeps them.
            user_items.add_events(cur, "import_new_events")
            user_profiles.set_counts(cur, "SELECT DISTINCT user_id FROM import_new_events")
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
        interactions_archived=interactions_new - interactions_inserted,
        seconds=time.monotonic() - started,
    )
