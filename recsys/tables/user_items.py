"""user_items, a user's whole history, compact: one row per (user, movie) they ever touched.

`rt_user_interactions` is a 48 h window (the nightly archive moves older rows to Parquet);
`user_items` is the user's memory, kept by every writer of interactions (the streaming sink,
the importer) in the same transaction as its insert:
- the seen set of every serving tier (a row = seen, archived or not);
- the summed signal per movie (recsys.domain.events), which is all fold-in needs: with the item
  factors fixed, ALS's user step depends on a user's events only through that sum;
- the counts behind the profile (events, ratings, dislikes per movie).

Exactly once: a writer adds only the rows its own INSERT ... ON CONFLICT (event_id) DO NOTHING
returned, so an event replayed by Spark, or imported twice, is not counted again.
Cost: a user's rows are bounded by the catalogue, not by the length of their history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recsys.domain.events import DISLIKE, RATE, signal_sql

if TYPE_CHECKING:
    import psycopg

# What an INSERT into rt_user_interactions must RETURN for `record_new_events`.
RETURNING = "RETURNING user_id, movie_id, event_type, rating, occurred_at"


def accumulate_sql(source: str) -> str:
    """Add the events of `source` (user_id, movie_id, event_type, rating, occurred_at) to user_items."""
    return f"""
    INSERT INTO user_items AS u (user_id, movie_id, signal, events, ratings, dislikes, last_at)
    SELECT user_id, movie_id, sum({signal_sql()}), count(*),
           count(*) FILTER (WHERE event_type = '{RATE}'), count(*) FILTER (WHERE event_type = '{DISLIKE}'),
           max(occurred_at)
      FROM {source}
     GROUP BY user_id, movie_id
    ON CONFLICT (user_id, movie_id) DO UPDATE SET
        signal = u.signal + EXCLUDED.signal,
        events = u.events + EXCLUDED.events,
        ratings = u.ratings + EXCLUDED.ratings,
        dislikes = u.dislikes + EXCLUDED.dislikes,
        last_at = greatest(u.last_at, EXCLUDED.last_at)
    """


def add_events(cur: psycopg.Cursor[Any], source: str) -> None:
    """Add the events of `source` to user_items (see accumulate_sql)."""
    cur.execute(accumulate_sql(source))


def record_new_events(insert_returning: str) -> str:
    """One statement: run `insert_returning` and add exactly the rows it inserted to user_items.

    `insert_returning` is an INSERT into rt_user_interactions ... ON CONFLICT (event_id) DO
    NOTHING ending in `RETURNING` (above). The statement returns one row: how many it inserted.
    """
    return (
        f"WITH inserted AS ({insert_returning}), "
        f"added AS ({accumulate_sql('inserted')}) "
        "SELECT count(*) FROM inserted"
    )


# Two-key advisory locks (a key space apart from the single-key locks of the importer and the
# publisher): the first key names "a user's history", the second is the user id folded to int4
# (two users sharing it only wait for each other).
_USER_LOCK_SPACE = 72_400_601
_LOCK_USERS = """
    SELECT pg_advisory_xact_lock(%s, (u %% 2147483647)::int)
      FROM unnest(%s::bigint[]) AS u ORDER BY u
"""


def lock_users(cur: psycopg.Cursor[Any], users: list[int]) -> None:
    """Serialise writers of the same users' histories until the transaction ends.

    A writer adds its events to user_items and then recomputes the profile from all of the
    user's rows; two writers of one user at once (two Spark tasks of a micro-batch, should a
    producer ever key a user's events to two partitions) would each miss the other's
    uncommitted rows. Locks are taken in user order, so writers cannot deadlock.
    """
    cur.execute(_LOCK_USERS, (_USER_LOCK_SPACE, sorted(users)))


# Fold-in and profile input of some users: one row per movie, bounded by the catalogue.
USER_ITEMS = """
    SELECT user_id, movie_id, signal, events, ratings FROM user_items WHERE user_id = ANY(%s)
"""


def replace_all(cur: psycopg.Cursor[Any], source: str) -> int:
    """Replace every row by the sums over `source` (as accumulate_sql); returns the rows written.

    Locks the table until the caller's transaction ends: writers wait, and what they add
    afterwards lands on top of the rebuilt sums.
    """
    cur.execute("LOCK TABLE user_items IN SHARE ROW EXCLUSIVE MODE")
    cur.execute("DELETE FROM user_items")
    cur.execute(accumulate_sql(source))
    return cur.rowcount
