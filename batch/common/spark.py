"""The one place that builds a SparkSession for the batch jobs."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pyspark.sql import SparkSession

# S3A for an `s3a://` archive store (MinIO in compose); must match pyspark's bundled Hadoop
# (pyspark/jars/hadoop-client-api-3.5.0.jar).
HADOOP_AWS = "org.apache.hadoop:hadoop-aws:3.5.0"


def s3a_conf(environ: Mapping[str, str]) -> dict[str, str]:
    """Spark settings for an `s3a://` ARCHIVE_URI, empty for a local one.

    The endpoint comes from S3_ENDPOINT (MinIO wants path-style addressing); credentials from
    the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, which S3A's default chain reads.
    """
    if not environ.get("ARCHIVE_URI", "").startswith("s3a://"):
        return {}
    conf = {
        "spark.jars.packages": HADOOP_AWS,
        "spark.hadoop.fs.s3a.path.style.access": "true",
    }
    endpoint = environ.get("S3_ENDPOINT")
    if endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(endpoint.startswith("https")).lower()
    return conf


def build_session(
    app_name: str,
    master: str | None = None,
    extra_conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """A session tuned for small local jobs: few shuffle partitions, quiet UI, driver heap from env.

    `SPARK_MASTER` (default `local[*]`) and `SPARK_DRIVER_MEMORY` (default 4g) override.
    """
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master or os.environ.get("SPARK_MASTER", "local[*]"))
        .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "4g"))
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    conf = s3a_conf(os.environ)
    extra = dict(extra_conf or {})
    if "spark.jars.packages" in conf and "spark.jars.packages" in extra:
        conf["spark.jars.packages"] += "," + extra.pop("spark.jars.packages")
    for key, value in {**conf, **extra}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
