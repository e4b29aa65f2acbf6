"""Erased users in the Parquet archive: dropped on every read, and rewritten out of the files.

The tombstones and their rule are recsys.tables.deleted_users' (an event of a user that occurred
before the user's deleted_at is erased). DeleteUser cannot rewrite Parquet inside its request
(the archive is a Hadoop filesystem of date partitions that only Spark writes, and a rewrite
costs a scan of the archive), so:
- readers (the training extract) drop erased rows with `without_erased`, from the moment the
  tombstone is committed;
- the nightly archive job calls `erase_archive`, which rewrites only the date partitions that
  hold erased rows, checks them back, and marks the tombstones done. One scan of the archive's
  user_id and occurred_at columns serves every deletion since the last night;
- and `erase_artifacts`, which rewrites the kept model versions' training pairs and user factors
  (MODEL_DIR/<version>/, batch.als.train) without the users erased after that version's training
  started (a later version never read their erased rows).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from batch.archive.job import COLUMNS, archived_dates, partition_path, read_partitions, with_date
from recsys.domain.spark import ARCHIVE_SCHEMA
from recsys.tables import deleted_users

log = logging.getLogger("batch.archive")

_TOMBSTONE_SCHEMA = T.StructType(
    [T.StructField("user_id", T.LongType(), False), T.StructField("_deleted_at", T.TimestampType(), False)]
)


class ErasureVerificationError(RuntimeError):
    """A rewritten partition still holds an erased row, or lost a row it should keep."""


def without_erased(
    spark: SparkSession, events: DataFrame, tombstones: Sequence[tuple[int, datetime]]
) -> DataFrame:
    """`events` (user_id, occurred_at, ...) without the rows the tombstones erase."""
    if not tombstones:
        return events
    dead = spark.createDataFrame(list(tombstones), _TOMBSTONE_SCHEMA)
    joined = events.join(F.broadcast(dead), "user_id", "left")
    kept = joined.where(F.col("_deleted_at").isNull() | (F.col("occurred_at") >= F.col("_deleted_at")))
    return kept.select(*events.columns)


@dataclass(frozen=True)
class ErasureResult:
    tombstones: int
    dates: list[str]
    removed: int
    pruned: int


def _delete_partition(spark: SparkSession, path: str) -> None:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    target = jvm.org.apache.hadoop.fs.Path(path)
    target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(target, True)


def erase_archive(spark: SparkSession, database_url: str, archive_uri: str, now: datetime) -> ErasureResult:
    """Rewrite the archive's partitions without the rows of users erased since the last run."""
    with psycopg.connect(database_url) as conn:
        pending = deleted_users.pending_archive_erasure(conn)
    removed, dates = 0, []
    present = archived_dates(spark, archive_uri)
    if pending and present:
        everything = spark.read.schema(ARCHIVE_SCHEMA).parquet(
            *[partition_path(archive_uri, d) for d in present]
        )
        keys = everything.select("event_id", "user_id", "occurred_at")
        erased = keys.join(without_erased(spark, keys, pending), "event_id", "left_anti")
        dates = sorted(r.date for r in with_date(erased).select("date").distinct().collect())
    if dates:
        old = read_partitions(spark, archive_uri, dates)
        kept = without_erased(spark, old, pending).select(*COLUMNS).localCheckpoint(eager=True)
        expected = kept.count()
        removed = old.count() - expected
        (
            with_date(kept)
            .repartition("date")
            .write.mode("overwrite")
            .option("partitionOverwriteMode", "dynamic")
            .partitionBy("date")
            .parquet(archive_uri)
        )
        # A partition left with no row is not rewritten by the overwrite: remove it.
        still = {r.date for r in with_date(kept).select("date").distinct().collect()}
        for date in dates:
            if date not in still:
                _delete_partition(spark, partition_path(archive_uri, date))
        written = read_partitions(spark, archive_uri, dates)
        left = written.join(without_erased(spark, written, pending), "event_id", "left_anti").count()
        if left or written.count() != expected:
            raise ErasureVerificationError(
                f"archive erasure check failed: {left} erased rows left, "
                f"{written.count()} rows written of {expected}"
            )
    with psycopg.connect(database_url) as conn:
        deleted_users.mark_archive_erased(conn, pending)
        pruned = deleted_users.prune(conn, now)
    if pending:
        log.info("erased from archive", extra={"users": len(pending), "dates": dates, "rows": removed})
    return ErasureResult(len(pending), dates, removed, pruned)


# The files of a model version (batch.als.train.fit_stage) that hold user ids, and their column.
_ARTIFACT_FILES = (
    ("pairs.parquet", "user_id"),
    # What versions trained before pairs.parquet kept instead, while such versions are kept.
    ("strengths.parquet", "user_id"),
    ("holdout.parquet", "user_id"),
    ("als/userFactors", "id"),
)


def _rewrite_without(path: Path, column: str, users: pa.Array) -> int:
    """Rewrite one Parquet file or directory without the rows of `users`; rows removed."""
    table = pq.read_table(path)
    erased = pc.is_in(pc.cast(table[column], pa.int64()), value_set=users)
    removed = int(pc.sum(erased).as_py() or 0)
    if not removed:
        return 0
    kept = table.filter(pc.invert(erased))
    if path.is_dir():  # a Spark output directory: swap in a directory holding one file
        fresh = path.with_name(path.name + ".erasing")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir()
        pq.write_table(kept, fresh / "part-00000.parquet")
        stale = path.with_name(path.name + ".stale")
        path.rename(stale)
        fresh.rename(path)
        shutil.rmtree(stale)
    else:
        tmp = path.with_name(path.name + ".erasing")
        pq.write_table(kept, tmp)
        tmp.replace(path)
    return removed


def erase_artifacts(model_dir: Path, tombstones: Sequence[tuple[int, datetime]]) -> int:
    """Remove erased users from every kept model version trained before their deletion."""
    from batch.als.train import version_time

    removed = 0
    if not tombstones or not model_dir.is_dir():
        return 0
    for version_dir in sorted(p for p in model_dir.iterdir() if p.is_dir()):
        started = version_time(version_dir.name)
        users = [u for u, deleted_at in tombstones if started is None or started < deleted_at]
        if not users:
            continue
        value_set = pa.array(users, pa.int64())
        for name, column in _ARTIFACT_FILES:
            path = version_dir / name
            if path.exists():
                removed += _rewrite_without(path, column, value_set)
    if removed:
        log.info("erased from model artifacts", extra={"rows": removed})
    return removed
