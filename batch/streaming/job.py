"""The streaming job: Kafka `movie-events` -> (foreachBatch) Postgres + Redis, every trigger.

extract: the Kafka source, from the earliest offset the checkpoint has not committed;
transform and load: in Spark tasks, one per Kafka partition (tasks.PartitionWriter): decode,
fold in the partition's users against the broadcast embeddings, write them idempotently;
the driver broadcasts the model when it changes, backfills feedback positions, re-solves the
touched movies the live model did not train (items.refresh_untrained, after the users' step),
and records the batch (a span linked to the events' traces, a log line).

Spark records a batch's offsets before running it and commits it after foreachBatch
returns, so a crash (even kill -9) re-runs the unfinished batch with the same offsets on
restart; the idempotent sink makes that re-run harmless: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags
from pyspark.broadcast import Broadcast
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from batch.common import jars as spark_jars
from batch.common.spark import build_session as spark_session
from batch.streaming import items
from batch.streaming.sink import EmbeddingsTracker, ModelEmbeddings, SpeedLayerSink, backfill_feedback
from batch.streaming.status import clear_status, write_status
from batch.streaming.tasks import TASK_RESULT_DDL, PartitionWriter, total
from batch.streaming.transforms import decode_events
from recsys import metrics
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


def _links(traceparents: Sequence[str | None]) -> list[Link]:
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
    """The foreachBatch function: the per-user work in Spark tasks, the bookkeeping here."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.database_url = settings.database_url
        self.redis_url = settings.redis_url
        self.driver = SpeedLayerSink(settings.database_url, settings.redis_url)
        self.embeddings = EmbeddingsTracker()
        self.broadcast: Broadcast[ModelEmbeddings] | None = None
        self.user_gram = items.UserGram()

    def _model(self) -> tuple[ModelEmbeddings, Broadcast[ModelEmbeddings]]:
        """The live embeddings, and their broadcast to the tasks (re-sent only when they change)."""
        try:
            model, changed = self.embeddings.current(self.driver.connection())
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self.driver.reset()
            raise
        if changed or self.broadcast is None:
            if self.broadcast is not None:
                self.broadcast.unpersist()
            self.broadcast = self.spark.sparkContext.broadcast(model)
        return model, self.broadcast

    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        started_ns = time.time_ns()
        started = time.perf_counter()
        model, broadcast = self._model()
        writer = PartitionWriter(self.database_url, self.redis_url, broadcast)
        rows = decode_events(raw).mapInArrow(writer, TASK_RESULT_DDL).collect()
        counts, traceparents, untrained = total(rows)
        written = time.perf_counter()
        try:
            conn = self.driver.connection()
            backfilled = backfill_feedback(conn) if counts["feedback"] else 0
            # After the users' step: the untrained movies' embeddings from the new user vectors.
            solved = items.refresh_untrained(conn, untrained, model, self.user_gram)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self.driver.reset()
            raise
        # The span covers the whole batch; its links (known once the tasks are done) point to
        # the traces of the events it stored.
        span = tracer.start_span("streaming.batch", links=_links(traceparents), start_time=started_ns)
        span.set_attribute("batch.id", batch_id)
        span.set_attribute("batch.events", counts["events"])
        span.set_attribute("batch.partitions", len(rows))
        span.end()
        metrics.observe_stream_batch(
            time.perf_counter() - started, counts["events"], counts["inserted"], counts["malformed"]
        )
        if counts["events"] or counts["malformed"]:
            log.info(
                "batch written",
                extra={
                    "batch_id": batch_id,
                    "ms": round((time.perf_counter() - started) * 1e3, 1),
                    "tasks_ms": round((written - started) * 1e3, 1),
                    "feedback_backfilled": backfilled,
                    "items_solved": solved,
                    **counts,
                },
            )

    def close(self) -> None:
        self.driver.close()


def _offsets(value: Any) -> dict[str, dict[str, int]]:
    parsed = json.loads(value) if isinstance(value, str) else value
    return parsed if isinstance(parsed, dict) else {}


def consumer_lag(progress: dict[str, Any]) -> int | None:
    """Records past the last micro-batch's end offsets, from its progress (Kafka's end offsets
    when the batch was planned); None before the first batch."""
    lag = None
    for source in progress.get("sources", []):
        latest, end = _offsets(source.get("latestOffset")), _offsets(source.get("endOffset"))
        for topic, partitions in latest.items():
            for partition, offset in partitions.items():
                done = end.get(topic, {}).get(partition, offset)
                lag = (lag or 0) + max(int(offset) - int(done), 0)
    return lag


def start_query(
    spark: SparkSession, settings: Settings, args: argparse.Namespace, processor: BatchProcessor
) -> StreamingQuery:
    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
        .option("subscribe", settings.kafka_topic)
        .option("startingOffsets", args.starting_offsets)
        .option("includeHeaders", "true")
        .option("maxOffsetsPerTrigger", args.max_offsets_per_trigger)
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
            lag = consumer_lag(progress)
            if lag is not None:
                metrics.STREAM_LAG.set(lag)
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
        "--max-offsets-per-trigger",
        type=int,
        default=MAX_OFFSETS_PER_TRIGGER,
        help="the most records one micro-batch takes (a backlog drains in batches of this size)",
    )
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

    # The host the services listen on (loopback locally, every interface in a container).
    metrics.serve_metrics(settings.streaming_metrics_port, settings.grpc_bind_host)
    spark = build_session(settings, args.master)
    spark.sparkContext.setLogLevel("WARN")
    stack_dir = settings.stack_dir.resolve()
    processor = BatchProcessor(spark, settings)
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
        processor.close()
        spark.stop()
    return 0
