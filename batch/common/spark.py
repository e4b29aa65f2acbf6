"""The one place that builds a SparkSession for the batch jobs."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pyspark.sql import SparkSession

POSTGRES_JDBC = "org.postgresql:postgresql:42.7.4"


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
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
