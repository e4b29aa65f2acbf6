"""The streaming job: Kafka `movie-events` -> (foreachBatch) Postgres + Redis, every trigger.

extract: the Kafka source, from the earliest offset the checkpoint has not committed;
transform: transforms.decode_events on Spark, then split_batch / feedback_rows on the driver;
load: sink.SpeedLayerSink.write_batch on the driver, idempotent per batch.

Spark records a batch's offsets before running it and commits it after foreachBatch
returns, so a crash (even kill -9) re-runs the unfinished batch with the same offsets on
restart; the idempotent sink makes that re-run harmless: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from batch.common import jars as spark_jars
from batch.common.spark import build_session as spark_session
from batch.streaming.sink import SpeedLayerSink
from batch.streaming.status import clear_status, write_status
from batch.streaming.transforms import decode_events, feedback_rows, split_batch
from recsys.config import Settings
from recsys.logs import setup_logging
from recsys.telemetry import setup_tracing

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

MAX_OFFSETS_PER_TRIGGER = 100_000
# The executor's Kafka consumer reads a batch's offset range up to the end of the log, and a
# fetch at the end waits fetch.max.wait.ms (500 ms by default) for data that is not coming:
# that wait was ~1 s of every micro-batch, a 5-record one included (bench/freshness.md, #16).
FETCH_MAX_WAIT_MS = 10
MAX_TRACE_LINKS = 32
RESTART_BACKOFF_SECONDS = 5.0


def build_session(settings: Settings, master: str) -> SparkSession:
    where = spark_jars.jars_dir({"STACK_DIR": str(settings.stack_dir), **os.environ})
    jars = spark_jars.ensure("streaming", where)
    return spark_session(
        "recsys-streaming",
        master=master,
        extra_conf={
            "spark.jars": ",".join(str(j) for j in jars),
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.memory": "1g",
            "spark.sql.streaming.stopTimeout": "15000",
            # seconds-latency micro-batches: never wait for a "better" executor (local mode)
            "spark.locality.wait": "0s",
        },
    )


def _links(traceparents: list[str | None]) -> list[Link]:
    links = []
    for tp in traceparents[:MAX_TRACE_LINKS]:
        parts = (tp or "").split("-")
        if len(parts) == 4:
            try:
                ctx = SpanContext(int(parts[1], 16), int(parts[2], 16), True, TraceFlags(int(parts[3], 16)))
            except ValueError:
                continue
            links.append(Link(NonRecordingSpan(ctx).get_span_context()))
    return links


class BatchProcessor:
    """The foreachBatch function: transform on Spark, write from the driver."""

    def __init__(self, sink: SpeedLayerSink) -> None:
        self.sink = sink

    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        # A batch is seconds of events: one task reads all partitions, which costs less
        # scheduling than one task per Kafka partition (the driver collects it anyway).
        rows, malformed = split_batch(decode_events(raw.coalesce(1)).collect())
        collected = time.perf_counter()
        feedback = feedback_rows(rows)
        with tracer.start_as_current_span(
            "streaming.batch", links=_links([e["traceparent"] for e in rows])
        ) as span:
            span.set_attribute("batch.id", batch_id)
            span.set_attribute("batch.events", len(rows))
            stats = self.sink.write_batch(rows, feedback)
        if rows or malformed:
            log.info(
                "batch written",
                extra={
                    "batch_id": batch_id,
                    "malformed": malformed,
                    "ms": round((time.perf_counter() - started) * 1e3, 1),
                    "spark_ms": round((collected - started) * 1e3, 1),
                    **stats,
                },
            )


def start_query(
    spark: SparkSession, settings: Settings, args: argparse.Namespace, processor: BatchProcessor
) -> StreamingQuery:
    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
        .option("subscribe", settings.kafka_topic)
        .option("startingOffsets", args.starting_offsets)
        .option("includeHeaders", "true")
        .option("maxOffsetsPerTrigger", MAX_OFFSETS_PER_TRIGGER)
        .option("kafka.fetch.max.wait.ms", FETCH_MAX_WAIT_MS)
        .load()
    )
    query = (
        source.writeStream.queryName("speed-layer")
        .foreachBatch(processor)
        .trigger(processingTime=f"{args.trigger_seconds:g} seconds")
        .option("checkpointLocation", args.checkpoint)
        .start()
    )
    log.info("streaming", extra={"trigger_seconds": args.trigger_seconds, "checkpoint": args.checkpoint})
    return query


def run_until_stopped(
    query: StreamingQuery, stack_dir: Path, args: argparse.Namespace, stopping: dict[str, Any]
) -> str | None:
    """Heartbeat until SIGTERM (None, query stopped) or until the query fails (its error)."""
    try:
        while query.isActive and not stopping["flag"]:
            progress: dict[str, Any] = query.lastProgress or {}
            write_status(
                stack_dir,
                args.name,
                trigger_seconds=args.trigger_seconds,
                batch_id=progress.get("batchId"),
                input_rows_per_second=progress.get("inputRowsPerSecond") or 0.0,
                processed_rows_per_second=progress.get("processedRowsPerSecond") or 0.0,
                num_input_rows=progress.get("numInputRows", 0),
                duration_ms=progress.get("durationMs", {}),
                sources=[s.get("endOffset") for s in progress.get("sources", [])],
            )
            query.awaitTermination(1)
    except StreamingQueryException as err:
        return str(err)
    finally:
        # A batch cut short by stop() is re-run from the checkpoint on the next start.
        query.stop()
    return None if stopping["flag"] else "query terminated"


def parse_args(argv: list[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m batch.streaming", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--master",
        default=os.environ.get("SPARK_MASTER", "local[2]"),
        help="local[2], or the stack's cluster (SPARK_MASTER, stack/spark.py)",
    )
    parser.add_argument(
        "--trigger-seconds",
        type=float,
        default=settings.stream_trigger_seconds,
        help="micro-batch interval (STREAM_TRIGGER_SECONDS)",
    )
    parser.add_argument(
        "--checkpoint",
        default=str((settings.stack_dir / "checkpoints" / "streaming").resolve()),
        help="checkpoint directory (default ${STACK_DIR}/checkpoints/streaming)",
    )
    parser.add_argument("--starting-offsets", default="earliest", help="used only without a checkpoint")
    parser.add_argument(
        "--name",
        default="streaming",
        help="instance name: its heartbeat is ${STACK_DIR}/<name>/status.json (the stack's is 'streaming')",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    setup_logging("streaming", settings.log_level)
    setup_tracing("streaming", settings.otel_endpoint, settings.trace_sample_ratio)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    args = parse_args(argv, settings)

    stopping: dict[str, Any] = {"flag": False}

    def request_stop(signum: int, _frame: Any) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    spark = build_session(settings, args.master)
    spark.sparkContext.setLogLevel("WARN")
    sink = SpeedLayerSink(settings.database_url, settings.redis_url)
    stack_dir = settings.stack_dir.resolve()
    processor = BatchProcessor(sink)
    try:
        while not stopping["flag"]:
            query = start_query(spark, settings, args, processor)
            failure = run_until_stopped(query, stack_dir, args, stopping)
            if failure is None:
                break
            # Kafka or Postgres went away mid-batch: restart the query from its checkpoint
            # (the failed batch re-runs; the sink is idempotent) instead of exiting.
            log.error("query failed; restarting it", extra={"error": failure[:2000]})
            time.sleep(RESTART_BACKOFF_SECONDS)
    finally:
        log.info("stopping")
        clear_status(stack_dir, args.name)
        sink.close()
        spark.stop()
    return 0
