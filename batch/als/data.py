"""Extract for training: the training window's events, from the archive and from PostgreSQL.

The window ends at the newest event held anywhere and reaches `recsys.windows.TRAINING_DAYS`
back (`--days`).

The archive (written by `batch.archive`) holds interactions older than 48 h as Parquet
partitioned by `date=YYYY-MM-DD`; PostgreSQL holds the rest. A row may be in both for a moment
(archived, not yet deleted), so the union is deduplicated on `event_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from batch.archive.erasure import without_erased
from batch.archive.job import archived_dates, partition_path
from recsys import windows
from recsys.domain.spark import TRAINING_SCHEMA
from recsys.tables import deleted_users

COLUMNS = [f.name for f in TRAINING_SCHEMA.fields]

# Spark ALS ids are 32-bit integers.
MAX_ID = 2**31 - 1


def read_recent(database_url: str, since: datetime) -> pd.DataFrame:
    """Interactions in PostgreSQL that occurred at or after `since`."""
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT event_id, user_id, movie_id, event_type, rating::float8, occurred_at "
            "FROM rt_user_interactions WHERE occurred_at >= %s",
            (since,),
        )
        rows = cur.fetchall()
    pdf = pd.DataFrame(rows, columns=COLUMNS)
    pdf["occurred_at"] = pd.to_datetime(pdf["occurred_at"], utc=True)
    return pdf


def _newest_in_postgres(database_url: str) -> datetime | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT max(occurred_at) FROM rt_user_interactions").fetchone()
    return row[0] if row else None


def _newest_in_archive(spark: SparkSession, archive_uri: str) -> datetime | None:
    dates = archived_dates(spark, archive_uri)
    if not dates:
        return None
    newest = spark.read.schema(TRAINING_SCHEMA).parquet(partition_path(archive_uri, dates[-1]))
    # As epoch seconds: a collected timestamp would come back naive, in the driver's zone.
    row = newest.agg(F.max(F.col("occurred_at").cast("double"))).first()
    return None if row is None or row[0] is None else datetime.fromtimestamp(row[0], UTC)


@dataclass(frozen=True)
class Window:
    """The training window: `days` days back from the newest event held anywhere."""

    since: datetime
    until: datetime


def training_window(
    spark: SparkSession, database_url: str, archive_uri: str, days: int
) -> Window | None:
    """None when there is no event at all. The end is the newest event, not the wall clock:
    imported history (MovieLens ends in 1998) trains as well as last night's events."""
    candidates = [
        t for t in (_newest_in_postgres(database_url), _newest_in_archive(spark, archive_uri)) if t
    ]
    if not candidates:
        return None
    until = max(candidates)
    return Window(since=until - timedelta(days=days), until=until)


def archive_dates(since: datetime, until: datetime) -> list[str]:
    days = (until.date() - since.date()).days
    return [(since.date() + timedelta(days=d)).isoformat() for d in range(days + 1)]


def read_archive(spark: SparkSession, archive_uri: str, window: Window) -> DataFrame:
    """Archived interactions of the window (none if the archive has no partition in it)."""
    wanted = set(archive_dates(window.since, window.until))
    paths = [partition_path(archive_uri, d) for d in archived_dates(spark, archive_uri) if d in wanted]
    if not paths:
        return spark.createDataFrame([], TRAINING_SCHEMA)
    # One read of every partition: a year is ~365 directories.
    archived = spark.read.schema(TRAINING_SCHEMA).parquet(*paths).select(*COLUMNS)
    return archived.where(F.col("occurred_at") >= F.lit(window.since))


def union_events(archived: DataFrame, recent: DataFrame) -> DataFrame:
    """Both sources, one row per event_id, ids that fit Spark ALS."""
    both = archived.select(*COLUMNS).unionByName(recent.select(*COLUMNS))
    return both.dropDuplicates(["event_id"]).where(
        (F.col("user_id") >= 0)
        & (F.col("user_id") <= MAX_ID)
        & (F.col("movie_id") >= 0)
        & (F.col("movie_id") <= MAX_ID)
    )


@dataclass(frozen=True)
class Extract:
    """What training reads, and how much came from where (recorded in the model's trained_on)."""

    events: DataFrame
    window: Window
    from_archive: int
    from_postgres: int


def extract_events(
    spark: SparkSession, database_url: str, archive_uri: str, days: int = windows.TRAINING_DAYS
) -> Extract | None:
    """The window's events from the archive and PostgreSQL; None when there is no event."""
    window = training_window(spark, database_url, archive_uri, days)
    if window is None:
        return None
    recent_rows = read_recent(database_url, window.since)
    recent = spark.createDataFrame(recent_rows, TRAINING_SCHEMA)
    # Deleted users' rows the archive has not been rewritten without yet (batch.archive.erasure).
    with psycopg.connect(database_url) as conn:
        tombstones = deleted_users.tombstones(conn)
    archived = without_erased(spark, read_archive(spark, archive_uri, window), tombstones).cache()
    return Extract(union_events(archived, recent), window, archived.count(), len(recent_rows))


def mark_holdout(strengths: DataFrame, holdout_percent: int, min_pairs: int = 5) -> DataFrame:
    """`strengths` with a boolean `is_holdout`: the (user, movie) pairs whose hash falls in the
    first `holdout_percent` of 100 buckets, among users with at least `min_pairs` pairs.

    The rule depends only on the pair, so every day's holdout excludes the same pairs: a live
    model trained yesterday never saw today's holdout pairs either, and both models can be
    compared on it fairly. Only positive pairs are held out (a dislike is not a target).
    """
    counts = strengths.groupBy("user_id").agg(F.count("*").alias("n_pairs"))
    bucket = F.pmod(F.xxhash64("user_id", "movie_id"), F.lit(100))
    return (
        strengths.join(counts, "user_id")
        .withColumn(
            "is_holdout",
            (F.col("n_pairs") >= min_pairs) & (bucket < holdout_percent) & (F.col("strength") > 0),
        )
        .drop("n_pairs")
    )


def split_holdout(
    strengths: DataFrame, holdout_percent: int, min_pairs: int = 5
) -> tuple[DataFrame, DataFrame]:
    """(train, holdout) of `mark_holdout`."""
    marked = mark_holdout(strengths, holdout_percent, min_pairs)
    return (
        marked.where(~F.col("is_holdout")).drop("is_holdout"),
        marked.where(F.col("is_holdout")).drop("is_holdout"),
    )
