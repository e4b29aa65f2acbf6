"""The one place that builds a SparkSession for the batch jobs."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import SparkSession

from batch.common import jars

REPO = Path(__file__).resolve().parents[2]


def s3a_conf(environ: Mapping[str, str]) -> dict[str, str]:
    """Spark settings for an `s3a://` ARCHIVE_URI, empty for a local one.

    The S3A jars (batch.common.jars, group `s3a`) go on `spark.jars`: fetched ahead of time,
    not resolved by Spark at the job's start (`spark.jars.packages` would need the network).

    The endpoint comes from S3_ENDPOINT (MinIO wants path-style addressing); credentials from
    the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, which S3A's default chain reads.
    """
    if not environ.get("ARCHIVE_URI", "").startswith("s3a://"):
        return {}
    conf = {
        "spark.jars": ",".join(str(p) for p in jars.ensure("s3a", environ=dict(environ))),
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

    `SPARK_MASTER` (default `local[*]`) and `SPARK_DRIVER_MEMORY` (default 4g) override. With a
    `spark://` master (the stack's standalone cluster, stack/spark.py) the job takes at most
    SPARK_APP_CORES of its cores, and the executors' Python workers run this interpreter with the
    repository on their path, so anything a task unpickles imports as it does on the driver.
    """
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "4g"))
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    master = master or os.environ.get("SPARK_MASTER", "local[*]")
    # Python tasks (the streaming job's per-user work) run this interpreter, not whatever
    # `python3` is on the PATH: the SparkContext reads it from the environment, not the conf.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = builder.master(master)
    if master.startswith("spark://"):
        builder = (
            builder.config("spark.cores.max", os.environ.get("SPARK_APP_CORES", "2"))
            .config("spark.executor.memory", os.environ.get("SPARK_EXECUTOR_MEMORY", "1g"))
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.pyspark.python", sys.executable)
            .config("spark.executorEnv.PYTHONPATH", str(REPO))
        )
    conf = s3a_conf(os.environ)
    extra = dict(extra_conf or {})
    if "spark.jars" in conf and "spark.jars" in extra:
        conf["spark.jars"] += "," + extra.pop("spark.jars")
    for key, value in {**conf, **extra}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
