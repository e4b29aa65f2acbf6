"""What one small micro-batch's Spark work costs, piece by piece (issue #16).

    .venv/bin/python bench/microbatch.py        # the local stack's Kafka must be up

Reads the last 2 records of each partition of the events topic with a Spark *batch* read
(the same Kafka source and options as the streaming job) and times, 5 times each:
  * spark.range(5).collect()                      - a Spark job's floor (scheduling, Py4J)
  * raw.count()                                   - the Kafka read alone
  * the same with kafka.fetch.max.wait.ms = 10    - without the consumer's wait at the log end
  * decode_events(raw.coalesce(1)).collect()      - the driver-side path the job had before
  * decode_events(raw).mapInArrow(rows counted)   - the job's path now (tasks.PartitionWriter,
                                                    one Python task per partition), no writes
Medians (and minima) in ms. Spark's per-batch durations of the running job are in
bench/ingest.py's output; this isolates the Kafka read inside addBatch.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from confluent_kafka import Consumer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batch.streaming.job import build_session  # noqa: E402
from batch.streaming.transforms import decode_events  # noqa: E402
from recsys.config import Settings  # noqa: E402


def _count_rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield pa.RecordBatch.from_pylist([{"n": sum(b.num_rows for b in batches)}])


def main() -> None:
    settings = Settings.from_env()
    topic, bootstrap = settings.kafka_topic, settings.kafka_bootstrap_servers
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-microbatch"})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    consumer.close()
    start = json.dumps({topic: {str(p): max(0, o - 2) for p, o in ends.items()}})
    end = json.dumps({topic: {str(p): o for p, o in ends.items()}})

    spark = build_session(settings, "local[2]")
    spark.sparkContext.setLogLevel("ERROR")

    def raw(**options: str) -> Any:
        reader = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", topic)
            .option("includeHeaders", "true")
            .option("startingOffsets", start)
            .option("endingOffsets", end)
        )
        for key, value in options.items():
            reader = reader.option(key, value)
        return reader.load()

    short = {"kafka.fetch.max.wait.ms": "10"}
    cases: dict[str, Callable[[], object]] = {
        "spark.range(5).collect()": lambda: spark.range(5).collect(),
        "raw.count()  (fetch.max.wait.ms 500, the default)": lambda: raw().count(),
        "raw.count()  (fetch.max.wait.ms 10)": lambda: raw(**short).count(),
        "decode_events(raw.coalesce(1)).collect()  (500)": lambda: decode_events(raw().coalesce(1)).collect(),
        "decode_events(raw.coalesce(1)).collect()  (10)": lambda: decode_events(
            raw(**short).coalesce(1)
        ).collect(),
    }
    cases["decode_events(raw).mapInArrow(count)  (10)"] = lambda: (
        decode_events(raw(**short)).mapInArrow(_count_rows, "n long").collect()
    )
    for name, run in cases.items():
        run()  # warm-up
        times = []
        for _ in range(5):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1e3)
        print(f"{name:52s} median {statistics.median(times):6.0f} ms, min {min(times):6.0f} ms", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
