"""deleted_users: erasing a user (DeleteUser), and the tombstone every later writer honours.

Erasing is one transaction (`erase`): a tombstone `(user_id, deleted_at)` is written and every
row holding the user's id is deleted from every table in USER_TABLES. What cannot be deleted in
that transaction is dropped by the rule of the tombstone, in one place (ERASED_SQL):

    an event of user U that occurred before U's deleted_at is erased.

- Kafka still holds the user's events for its retention (docs/privacy.md): the streaming sink
  drops them (`drop_erased`), so a replay or a backlog cannot bring the user back.
- The Parquet archive: the training extract drops them on read, and the nightly archive job
  rewrites the partitions that hold them (`batch/archive/erasure.py`, then `mark_archive_erased`).
- Events that occur after the deletion are a new user with the same id (see docs/privacy.md).

Races with the sink: the sink takes `LOCK TABLE deleted_users IN SHARE MODE` before it writes a
batch; `erase` writes the tombstone first (ROW EXCLUSIVE, which conflicts with SHARE). So either
the sink's batch commits first and `erase` then deletes its rows, or `erase` commits first and the
sink then sees the tombstone. Concurrent sink batches (SHARE with SHARE) do not wait on each other.

A tombstone holds only the id and two times; it is pruned once Kafka cannot hold the user's
events any more (TOMBSTONE_KEPT) and the archive has been rewritten (`prune`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg
    import psycopg

# Every table with rows of one user (a `user_id` column). tests/integration/test_delete_user.py
# checks this against the schema, so a new table with a user id cannot be forgotten here.
USER_TABLES = (
    "rt_user_interactions",
    "user_items",
    "user_profiles",
    "model_user_factors",
    "batch_recommendations",
    "recommendation_logs",
    "recommendation_feedback",
)

# Kafka keeps a topic's records for log.retention.hours=168 (stack/programs.py; the broker's
# default in compose too). A tombstone must outlive the last record the user could have there,
# plus a day for a stopped stream to catch up.
KAFKA_RETENTION = timedelta(hours=168)
TOMBSTONE_KEPT = KAFKA_RETENTION + timedelta(days=1)

# The rule: `e` is an event (user_id, occurred_at), `d` the deleted_users row of its user.
ERASED_SQL = "e.occurred_at < d.deleted_at"

_TOMBSTONE = """
    INSERT INTO deleted_users (user_id) VALUES ($1)
    ON CONFLICT (user_id) DO UPDATE SET deleted_at = now(), archive_erased_at = NULL
    RETURNING deleted_at
"""


async def erase(conn: asyncpg.Connection, user_id: int) -> tuple[datetime, dict[str, int]]:
    """Tombstone the user and delete their rows everywhere, in one transaction.

    Returns the tombstone's time and how many rows each table lost. Erasing an id twice (or one
    that never had rows) is harmless: the tombstone's time moves to now.
    """
    counts: dict[str, int] = {}
    async with conn.transaction():
        # First: the tombstone's lock is what orders this transaction against the sink's batches.
        deleted_at = await conn.fetchval(_TOMBSTONE, user_id)
        for table in USER_TABLES:
            status = await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
            counts[table] = int(status.rsplit(" ", 1)[-1])
    return deleted_at, counts


# The indexes (1-based, in the arrays' order) of the events the rule erases.
_ERASED_EVENTS = f"""
    SELECT e.i FROM unnest(%s::bigint[], %s::timestamptz[]) WITH ORDINALITY AS e(user_id, occurred_at, i)
      JOIN deleted_users d USING (user_id)
     WHERE {ERASED_SQL}
"""


def drop_erased(
    cur: psycopg.Cursor[Any], events: list[dict[str, Any]], feedback: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The streaming sink's filter: `events` and `feedback` (dicts with event_id, user_id and
    occurred_at) without those of erased users. Call it first in the batch's transaction: it
    takes the lock that orders the batch against `erase` (see the module docstring).

    The comparison runs in PostgreSQL, on the same timestamptz conversion the insert uses.
    """
    cur.execute("LOCK TABLE deleted_users IN SHARE MODE")
    if not events:
        return events, feedback
    rows = cur.execute(
        _ERASED_EVENTS, ([e["user_id"] for e in events], [e["occurred_at"] for e in events])
    ).fetchall()
    if not rows:
        return events, feedback
    erased = {events[int(r[0]) - 1]["event_id"] for r in rows}
    return (
        [e for e in events if e["event_id"] not in erased],
        [f for f in feedback if f["event_id"] not in erased],
    )


def tombstones(conn: psycopg.Connection[Any]) -> list[tuple[int, datetime]]:
    """Every tombstone (user_id, deleted_at): what the training extract and the archive drop."""
    return [(int(r[0]), r[1]) for r in conn.execute("SELECT user_id, deleted_at FROM deleted_users")]


def pending_archive_erasure(conn: psycopg.Connection[Any]) -> list[tuple[int, datetime]]:
    """The tombstones whose users' rows may still be in the Parquet archive."""
    return [
        (int(r[0]), r[1])
        for r in conn.execute("SELECT user_id, deleted_at FROM deleted_users WHERE archive_erased_at IS NULL")
    ]


def mark_archive_erased(conn: psycopg.Connection[Any], done: Sequence[tuple[int, datetime]]) -> int:
    """Record that the archive holds no row of these tombstones (as read: a user erased again
    since keeps its mark unset, and the next run rewrites the archive for it)."""
    if not done:
        return 0
    cur = conn.execute(
        """
        UPDATE deleted_users d SET archive_erased_at = now()
          FROM unnest(%s::bigint[], %s::timestamptz[]) AS t(user_id, deleted_at)
         WHERE d.user_id = t.user_id AND d.deleted_at = t.deleted_at
        """,
        ([u for u, _ in done], [t for _, t in done]),
    )
    return cur.rowcount


def prune(conn: psycopg.Connection[Any], now: datetime) -> int:
    """Drop the tombstones Kafka can no longer hold events for, once the archive is clean."""
    cur = conn.execute(
        "DELETE FROM deleted_users WHERE archive_erased_at IS NOT NULL AND deleted_at < %s",
        (now - TOMBSTONE_KEPT,),
    )
    return cur.rowcount


def drop_staged(conn: psycopg.Connection[Any], version: str) -> int:
    """Inside the model switch's transaction, before it copies anything: remove the staged
    vectors and lists of every tombstoned user (the model may have been trained on data read
    before a deletion). A user who came back after it still gets a vector, folded in from their
    new history as the version goes live (batch.als.publish.fold_in_untrained), and is served by
    the realtime tier; batch lists again once the tombstone is pruned."""
    conn.execute("LOCK TABLE deleted_users IN SHARE MODE")
    dropped = 0
    for table in ("model_user_factors", "batch_recommendations"):
        cur = conn.execute(
            f"DELETE FROM {table} WHERE model_version = %s "
            "AND user_id IN (SELECT user_id FROM deleted_users)",
            (version,),
        )
        dropped += cur.rowcount
    return dropped
