"""Extract for training: the archive's last N days plus the recent window still in PostgreSQL.

The archive (written by `batch.archive`) holds interactions older than 48 h as Parquet
partitioned by `date=YYYY-MM-DD`; PostgreSQL holds the rest. A row may be in both for a moment
(archived, not yet deleted), so the union is deduplicated on `event_id`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

EVENT_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType(), False),
        T.StructField("user_id", T.LongType(), False),
        T.StructField("movie_id", T.LongType(), False),
        T.StructField("event_type", T.StringType(), False),
        T.StructField("rating", T.DoubleType(), True),
        T.StructField("occurred_at", T.TimestampType(), False),
    ]
)
COLUMNS = [f.name for f in EVENT_SCHEMA.fields]

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


def archive_dates(since: datetime, until: datetime) -> list[str]:
    days = (until.date() - since.date()).days
    return [(since.date() + timedelta(days=d)).isoformat() for d in range(days + 1)]


def read_archive(spark: SparkSession, archive_uri: str, since: datetime) -> DataFrame:
    """Archived interactions of the partitions dated `since` .. today (none if no archive yet)."""
    until = datetime.now(UTC)
    paths = [f"{archive_uri.rstrip('/')}/date={d}" for d in archive_dates(since, until)]
    if "://" not in archive_uri:
        paths = [p for p in paths if Path(p).is_dir()]
    frames = []
    for path in paths:
        try:
            frames.append(spark.read.schema(EVENT_SCHEMA).parquet(path).select(*COLUMNS))
        except Exception as exc:  # a missing partition on an object store
            if "PATH_NOT_FOUND" not in str(exc) and "does not exist" not in str(exc):
                raise
    if not frames:
        return spark.createDataFrame([], EVENT_SCHEMA)
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out.where(F.col("occurred_at") >= F.lit(since))


def union_events(archived: DataFrame, recent: DataFrame) -> DataFrame:
    """Both sources, one row per event_id, ids that fit Spark ALS."""
    both = archived.select(*COLUMNS).unionByName(recent.select(*COLUMNS))
    return both.dropDuplicates(["event_id"]).where(
        (F.col("user_id") >= 0)
        & (F.col("user_id") <= MAX_ID)
        & (F.col("movie_id") >= 0)
        & (F.col("movie_id") <= MAX_ID)
    )


def extract_events(
    spark: SparkSession, database_url: str, archive_uri: str, days: int = 30
) -> DataFrame:
    since = datetime.now(UTC) - timedelta(days=days)
    recent = spark.createDataFrame(read_recent(database_url, since), EVENT_SCHEMA)
    return union_events(read_archive(spark, archive_uri, since), recent)


def split_holdout(
    strengths: DataFrame, holdout_percent: int, min_pairs: int = 5
) -> tuple[DataFrame, DataFrame]:
    """A deterministic holdout: (user, movie) pairs whose hash falls in the first
    `holdout_percent` of 100 buckets, among users with at least `min_pairs` pairs.

    The rule depends only on the pair, so every day's holdout excludes the same pairs: a live
    model trained yesterday never saw today's holdout pairs either, and both models can be
    compared on it fairly. Only positive pairs are held out (a dislike is not a target).
    """
    counts = strengths.groupBy("user_id").agg(F.count("*").alias("n_pairs"))
    bucket = F.pmod(F.xxhash64("user_id", "movie_id"), F.lit(100))
    marked = strengths.join(counts, "user_id").withColumn(
        "is_holdout",
        (F.col("n_pairs") >= min_pairs) & (bucket < holdout_percent) & (F.col("strength") > 0),
    )
    train = marked.where(~F.col("is_holdout")).drop("n_pairs", "is_holdout")
    holdout = marked.where(F.col("is_holdout")).drop("n_pairs", "is_holdout")
    return train, holdout
