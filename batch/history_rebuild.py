"""`python -m batch.history_rebuild`: rebuild user_items from the Parquet archive + the window.

    python -m batch.history_rebuild

`user_items` (recsys/tables/user_items.py) is kept incrementally by every writer of interactions, and
migration 0005 backfilled it from `rt_user_interactions` only. A deployment whose history was
archived before that migration runs this once (and it can repair the table at any time): it
reads every archived event, adds the window's, one row per event_id, and replaces user_items
and the profiles' counts with their sums, in one transaction.

The writers (the streaming sink, the importer) wait on the table lock from the moment the
window is read to the commit, and add their events on top afterwards, so none is lost or
counted twice. Do not run it while the archive job runs: an event it moves between the two
reads would be missed (the nightly DAG runs the archive at 02:00).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from pyspark.sql import SparkSession

from batch.archive.job import archived_dates, partition_path
from batch.common.spark import build_session
from recsys.config import Settings
from recsys.domain.spark import ARCHIVE_SCHEMA
from recsys.logs import setup_logging
from recsys.tables import user_items, user_profiles

log = logging.getLogger("batch.history_rebuild")

EVENT_COLUMNS = ("event_id", "user_id", "movie_id", "event_type", "rating", "occurred_at")

# Every event once: the archive's and the window's (a row can be in both for a moment).
_EVENTS = """
    (SELECT DISTINCT ON (event_id) user_id, movie_id, event_type, rating, occurred_at
       FROM (SELECT event_id, user_id, movie_id, event_type, rating, occurred_at FROM rebuild_archived
             UNION ALL
             SELECT event_id, user_id, movie_id, event_type, rating, occurred_at FROM rt_user_interactions) e
      ORDER BY event_id) AS events
"""



def archived_events(spark: SparkSession, archive_uri: str) -> Iterable[Sequence[Any]]:
    """Every archived event as EVENT_COLUMNS tuples, streamed a partition at a time."""
    paths = [partition_path(archive_uri, d) for d in archived_dates(spark, archive_uri)]
    if not paths:
        return []
    frame = spark.read.schema(ARCHIVE_SCHEMA).parquet(*paths).select(*EVENT_COLUMNS)
    return (tuple(row) for row in frame.toLocalIterator())


def rebuild(conn: psycopg.Connection[Any], archived: Iterable[Sequence[Any]]) -> dict[str, int]:
    """Replace user_items and the profile counts by the sums over `archived` + the window."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE rebuild_archived (event_id text, user_id bigint, movie_id bigint, "
            "event_type text, rating real, occurred_at timestamptz) ON COMMIT DROP"
        )
        with cur.copy(f"COPY rebuild_archived ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
            for row in archived:
                copy.write_row(row)
        cur.execute("ANALYZE rebuild_archived")
        items = user_items.replace_all(cur, _EVENTS)
        profiles = user_profiles.recount_all(cur)
        counted = cur.execute("SELECT count(*) FROM rebuild_archived").fetchone()
    return {
        "archived_events": int(counted[0]) if counted else 0,
        "user_items": items,
        "profiles_updated": profiles,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.parse_args(argv)
    settings = Settings.from_env()
    setup_logging("batch-history-rebuild", settings.log_level)
    spark = build_session("recsys-history-rebuild")
    try:
        with psycopg.connect(settings.database_url) as conn:
            stats = rebuild(conn, archived_events(spark, settings.archive_uri))
    finally:
        spark.stop()
    log.info("user_items rebuilt", extra=stats)
    print(", ".join(f"{k} {v}" for k, v in stats.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
