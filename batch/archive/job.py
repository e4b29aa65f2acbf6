"""Archive job: interactions older than the recent window (`recsys.windows.RECENT`, 48 h) ->
Parquet by date, then (verified) out of PostgreSQL.

extract: the rows of `rt_user_interactions` older than the cutoff, and the archive's existing
rows of the dates they fall on. transform: union, one row per `event_id`, a `date` partition
column (UTC day of `occurred_at`). load: overwrite exactly those date partitions (Spark dynamic
partition overwrite), read them back, check every extracted event_id is there and the counts
match, and only then delete the extracted rows from PostgreSQL.

Re-running is harmless: a partition is always rewritten as (what it had + what is new) without
duplicates, so a run that died between the write and the delete just writes the same rows again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from recsys import windows
from recsys.domain.spark import ARCHIVE_SCHEMA
from recsys.tables import interactions

log = logging.getLogger("batch.archive")

COLUMNS = [f.name for f in ARCHIVE_SCHEMA.fields]


class ArchiveVerificationError(RuntimeError):
    """The written partitions do not hold every extracted row; nothing was deleted."""


@dataclass(frozen=True)
class ArchiveResult:
    cutoff: datetime
    extracted: int
    dates: list[str]
    deleted: int


def read_old_rows(database_url: str, cutoff: datetime, limit: int) -> pd.DataFrame:
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {', '.join(COLUMNS[:4])}, rating::float8, request_id, occurred_at, ingested_at "
            "FROM rt_user_interactions WHERE occurred_at < %s ORDER BY occurred_at LIMIT %s",
            (cutoff, limit),
        )
        rows = cur.fetchall()
    pdf = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("occurred_at", "ingested_at"):
        pdf[col] = pd.to_datetime(pdf[col], utc=True)
    return pdf


def with_date(events: DataFrame) -> DataFrame:
    """Adds the `date` partition column: the UTC day of `occurred_at` as YYYY-MM-DD."""
    return events.withColumn("date", F.date_format(F.col("occurred_at"), "yyyy-MM-dd"))


def merge_partitions(new: DataFrame, existing: DataFrame) -> DataFrame:
    """What the touched partitions must hold: existing + new rows, one per event_id (new wins)."""
    both = with_date(new.select(*COLUMNS)).withColumn("_new", F.lit(1)).unionByName(
        with_date(existing.select(*COLUMNS)).withColumn("_new", F.lit(0))
    )
    newest_first = Window.partitionBy("event_id").orderBy(F.col("_new").desc())
    ranked = both.withColumn("_n", F.row_number().over(newest_first))
    return ranked.where(F.col("_n") == 1).drop("_n", "_new")


def partition_path(archive_uri: str, date: str) -> str:
    return f"{archive_uri.rstrip('/')}/date={date}"


def read_partitions(spark: SparkSession, archive_uri: str, dates: list[str]) -> DataFrame:
    """The rows of the given dates' partitions (those that exist), in one read: an imported
    history touches hundreds or thousands of dates, and a read per date costs seconds each."""
    present = set(archived_dates(spark, archive_uri))
    paths = [partition_path(archive_uri, d) for d in dates if d in present]
    if not paths:
        return spark.createDataFrame([], ARCHIVE_SCHEMA)
    return spark.read.schema(ARCHIVE_SCHEMA).parquet(*paths).select(*COLUMNS)


def delete_archived(
    database_url: str, event_ids: list[str], cutoff: datetime, chunk: int = 5000
) -> int:
    deleted = 0
    with psycopg.connect(database_url) as conn:
        for start in range(0, len(event_ids), chunk):
            with conn.transaction():
                deleted += interactions.delete_archived(conn, event_ids[start : start + chunk], cutoff)
    return deleted


def archived_dates(spark: SparkSession, archive_uri: str) -> list[str]:
    """The dates the archive has a partition for, oldest first (any Hadoop filesystem)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    root = jvm.org.apache.hadoop.fs.Path(archive_uri)
    fs = root.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(root):
        return []
    names = [status.getPath().getName() for status in fs.listStatus(root) if status.isDirectory()]
    return sorted(n.removeprefix("date=") for n in names if n.startswith("date="))


def event_ids(spark: SparkSession, archive_uri: str) -> set[str]:
    """Every event id the archive holds (one column of every partition: cheap next to a
    training run, and what an importer needs to file each event once whatever its date)."""
    paths = [partition_path(archive_uri, d) for d in archived_dates(spark, archive_uri)]
    if not paths:
        return set()
    rows = spark.read.schema(ARCHIVE_SCHEMA).parquet(*paths).select("event_id").collect()
    return {r.event_id for r in rows}


@dataclass(frozen=True)
class Written:
    dates: list[str]
    # The event ids the archive did not hold before (the importer counts exactly these once).
    new_event_ids: list[str]


def write_rows(spark: SparkSession, archive_uri: str, rows: pd.DataFrame) -> Written:
    """Merge `rows` (ARCHIVE_SCHEMA columns) into their date partitions and check them back.

    The one writer of the archive's layout: the nightly archive task and the importer (which
    files history older than the recent window here) both go through it. Raises
    ArchiveVerificationError if a written partition lacks a row.
    """
    new = spark.createDataFrame(rows[COLUMNS], ARCHIVE_SCHEMA)
    dates = sorted(rows["occurred_at"].dt.strftime("%Y-%m-%d").unique().tolist())
    existing = read_partitions(spark, archive_uri, dates).localCheckpoint(eager=True)
    new_ids = [
        r.event_id for r in new.select("event_id").join(existing, "event_id", "left_anti").collect()
    ]
    merged = merge_partitions(new, existing).localCheckpoint(eager=True)
    expected = merged.count()
    (
        merged.repartition("date")
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy("date")
        .parquet(archive_uri)
    )
    # Verify: read the written partitions back before anyone deletes the source rows.
    written = read_partitions(spark, archive_uri, dates)
    n_written = written.count()
    ids = spark.createDataFrame(rows[["event_id"]])
    missing = ids.join(written.select("event_id"), "event_id", "left_anti").count()
    if n_written != expected or missing:
        raise ArchiveVerificationError(
            f"archive check failed: wrote {n_written} rows, expected {expected}; "
            f"{missing} extracted rows missing"
        )
    return Written(dates, new_ids)


def archive_once(
    spark: SparkSession,
    database_url: str,
    archive_uri: str,
    cutoff: datetime,
    limit: int = 1_000_000,
) -> ArchiveResult:
    """One batch of at most `limit` rows older than `cutoff` (see the module docstring)."""
    old = read_old_rows(database_url, cutoff, limit)
    if old.empty:
        return ArchiveResult(cutoff, 0, [], 0)
    dates = write_rows(spark, archive_uri, old).dates
    deleted = delete_archived(database_url, old["event_id"].tolist(), cutoff)
    log.info("archived", extra={"rows": len(old), "dates": dates, "deleted": deleted})
    return ArchiveResult(cutoff, len(old), dates, deleted)


def archive(
    spark: SparkSession,
    database_url: str,
    archive_uri: str,
    older_than: timedelta = windows.RECENT,
    now: datetime | None = None,
    batch_rows: int = 1_000_000,
) -> list[ArchiveResult]:
    """Archive everything older than `older_than` (the recent window), in batches of `batch_rows`."""
    cutoff = (now or datetime.now(UTC)) - older_than
    results = []
    while True:
        result = archive_once(spark, database_url, archive_uri, cutoff, batch_rows)
        if result.extracted == 0:
            break
        results.append(result)
        if result.extracted < batch_rows:
            break
    return results
