"""The archive's pure transform on tiny frames."""

from __future__ import annotations

from datetime import UTC, datetime

from batch.archive.job import merge_partitions, with_date
from recsys.domain.spark import ARCHIVE_SCHEMA


def row(event_id: str, when: datetime, event_type: str = "view") -> tuple[object, ...]:
    return (event_id, 1, 2, event_type, None, None, when, when)


DAY1 = datetime(2026, 11, 1, 23, 59, tzinfo=UTC)
DAY2 = datetime(2026, 11, 2, 0, 1, tzinfo=UTC)


def test_date_partition_is_the_utc_day(spark) -> None:  # type: ignore[no-untyped-def]
    df = with_date(spark.createDataFrame([row("a", DAY1), row("b", DAY2)], ARCHIVE_SCHEMA))
    assert sorted((r.event_id, r.date) for r in df.collect()) == [
        ("a", "2026-11-01"), ("b", "2026-11-02")
    ]


def test_merge_keeps_one_row_per_event_and_the_new_one_wins(spark) -> None:  # type: ignore[no-untyped-def]
    existing = spark.createDataFrame([row("a", DAY1, "view"), row("b", DAY1)], ARCHIVE_SCHEMA)
    new = spark.createDataFrame([row("a", DAY1, "click"), row("c", DAY2)], ARCHIVE_SCHEMA)
    merged = merge_partitions(new, existing)
    got = sorted((r.event_id, r.event_type, r.date) for r in merged.collect())
    assert got == [("a", "click", "2026-11-01"), ("b", "view", "2026-11-01"), ("c", "view", "2026-11-02")]


def test_merge_is_idempotent(spark) -> None:  # type: ignore[no-untyped-def]
    rows = spark.createDataFrame([row("a", DAY1), row("b", DAY2)], ARCHIVE_SCHEMA)
    once = merge_partitions(rows, spark.createDataFrame([], ARCHIVE_SCHEMA))
    twice = merge_partitions(rows, once.drop("date"))
    assert sorted(once.collect()) == sorted(twice.collect())


def test_s3a_archive_store_gets_hadoop_aws_and_the_endpoint(tmp_path) -> None:
    from batch.common.jars import GROUPS, jar_name
    from batch.common.spark import s3a_conf

    assert s3a_conf({"ARCHIVE_URI": "/var/archive"}) == {}
    # The image's layout: the jars fetched at build time, nothing downloaded by the job.
    (tmp_path / "s3a").mkdir()
    for coordinate in GROUPS["s3a"]:
        (tmp_path / "s3a" / jar_name(coordinate)).write_bytes(b"jar")
    env = {
        "ARCHIVE_URI": "s3a://recsys-archive/x",
        "S3_ENDPOINT": "http://minio:9000",
        "SPARK_JARS_DIR": str(tmp_path),
        "SPARK_JARS_OFFLINE": "true",
    }
    conf = s3a_conf(env)
    assert "spark.jars.packages" not in conf
    assert [p.rsplit("/", 1)[1] for p in conf["spark.jars"].split(",")] == [
        jar_name(c) for c in GROUPS["s3a"]
    ]
    assert "hadoop-aws-3.5.0.jar" in conf["spark.jars"]
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://minio:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
