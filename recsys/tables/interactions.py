"""rt_user_interactions: the last 48 h of events, one row per event_id; every write to it.

Writers insert with ON CONFLICT (event_id) DO NOTHING, so a replayed or re-imported event is
not stored twice, and add exactly the rows they inserted to the users' histories (user_items)
in the same statement. The nightly archive deletes rows once they are verified in Parquet.
Writers: the streaming sink (insert_events), the importer (insert_imported), the archive job
(delete_archived). Readers: the Recommender and the ProfileService (recent interactions), the
training job (the window).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from recsys.tables.user_items import RETURNING, record_new_events

if TYPE_CHECKING:
    import psycopg

EVENT_FIELDS = ("event_id", "user_id", "movie_id", "event_type", "rating", "request_id", "occurred_at")

# The events as arrays (one round trip for a whole micro-batch).
_INSERT_EVENTS = record_new_events(
    f"""
    INSERT INTO rt_user_interactions
        (event_id, user_id, movie_id, event_type, rating, request_id, occurred_at)
    SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::real[],
                         %s::text[], %s::timestamptz[])
    ON CONFLICT (event_id) DO NOTHING
    {RETURNING}
    """
)

# An import's events: from the temporary tables import_events (all) and import_archived
# (event_id, is_new: filed in the archive instead), into import_new_events (what the import
# adds to the system: inserted into the window, or new to the archive).
_INSERT_IMPORTED = """
    WITH inserted AS (
        INSERT INTO rt_user_interactions
               (event_id, user_id, movie_id, event_type, rating, occurred_at)
        SELECT event_id, user_id, movie_id, event_type, rating, occurred_at
          FROM import_events
         WHERE (%(cutoff)s::timestamptz IS NULL OR occurred_at >= %(cutoff)s)
           AND event_id NOT IN (SELECT event_id FROM import_archived)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING event_id, user_id, movie_id, event_type, rating, occurred_at)
    INSERT INTO import_new_events
    SELECT * FROM inserted
    UNION ALL
    SELECT e.event_id, e.user_id, e.movie_id, e.event_type, e.rating, e.occurred_at
      FROM import_events e JOIN import_archived a USING (event_id) WHERE a.is_new
"""


def insert_events(cur: psycopg.Cursor[Any], events: Sequence[dict[str, Any]]) -> int:
    """Insert the events (dicts of EVENT_FIELDS) not stored yet, and add exactly those to
    user_items; returns how many were new."""
    row = cur.execute(_INSERT_EVENTS, [[e[f] for e in events] for f in EVENT_FIELDS]).fetchone()
    return int(row[0]) if row else 0


def insert_imported(cur: psycopg.Cursor[Any], cutoff: datetime | None) -> None:
    """An import's events at or after `cutoff` (all when None) that are not filed in the archive
    (see _INSERT_IMPORTED for the temporary tables it reads and fills)."""
    cur.execute(_INSERT_IMPORTED, {"cutoff": cutoff})


def delete_archived(conn: psycopg.Connection[Any], event_ids: Sequence[str], cutoff: datetime) -> int:
    """Delete the given events older than `cutoff` (verified in the archive); returns how many."""
    cur = conn.execute(
        "DELETE FROM rt_user_interactions WHERE event_id = ANY(%s) AND occurred_at < %s",
        (list(event_ids), cutoff),
    )
    return cur.rowcount
