"""The per-user work of a micro-batch, run in Spark tasks: one task per Kafka partition.

Kafka is keyed by user, so each partition of a micro-batch holds every event of its users in
that batch: a task decodes its records (transforms.split_batch), folds in its users against
the broadcast embeddings and writes them (sink.SpeedLayerSink), and returns one row of counts
(and the movies it touched that the live model did not train, for the driver's item fold-in).
More executor cores or workers run more partitions at once; the driver only plans the batch,
broadcasts the model when it changes, and sums the counts.

A task's connections live as long as its Python worker (Spark reuses workers), so a task does
not pay a connection set-up per micro-batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from batch.streaming.sink import ModelEmbeddings, SpeedLayerSink
from batch.streaming.transforms import feedback_rows, split_batch

# A task's trace context links (the driver's span keeps at most this many in all).
MAX_LINKS_PER_TASK = 32

COUNTS = ("events", "inserted", "users", "vectors", "feedback", "malformed", "pending_trimmed")
TASK_RESULT = pa.schema(
    [
        *(pa.field(name, pa.int64()) for name in COUNTS),
        pa.field("traceparents", pa.list_(pa.string())),
        pa.field("untrained_movies", pa.list_(pa.int64())),
    ]
)
# The same, as Spark's DDL for mapInArrow.
TASK_RESULT_DDL = ", ".join(
    [*(f"{name} long" for name in COUNTS), "traceparents array<string>", "untrained_movies array<long>"]
)

_sinks: dict[tuple[str, str], SpeedLayerSink] = {}


def _sink(database_url: str, redis_url: str) -> SpeedLayerSink:
    key = (database_url, redis_url)
    if key not in _sinks:
        _sinks[key] = SpeedLayerSink(database_url, redis_url)
    return _sinks[key]


@dataclass(frozen=True)
class PartitionWriter:
    """The mapInArrow function: decoded records of one partition in, one row of counts out.

    `model` is a Spark Broadcast of the driver's ModelEmbeddings (or, in tests, anything with
    a `.value`).
    """

    database_url: str
    redis_url: str
    model: Any

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        records = [row for batch in batches for row in batch.to_pylist()]
        events, malformed = split_batch(records)
        counts = dict.fromkeys(COUNTS, 0)
        counts["malformed"] = malformed
        untrained: list[int] = []
        if events:
            model: ModelEmbeddings = self.model.value
            stats = _sink(self.database_url, self.redis_url).write_batch(events, feedback_rows(events), model)
            counts.update({k: int(v) for k, v in stats.items() if k in counts})
            untrained = sorted({int(e["movie_id"]) for e in events} - model.trained)
        links = [e["traceparent"] for e in events if e["traceparent"]][:MAX_LINKS_PER_TASK]
        row = {**counts, "traceparents": links, "untrained_movies": untrained}
        yield pa.RecordBatch.from_pylist([row], schema=TASK_RESULT)


def total(rows: list[Any]) -> tuple[dict[str, int], list[str], set[int]]:
    """The tasks' counts summed, their trace links, and the untrained movies they touched."""
    counts = {name: sum(int(r[name]) for r in rows) for name in COUNTS}
    links = [tp for r in rows for tp in (r["traceparents"] or [])]
    untrained = {int(m) for r in rows for m in (r["untrained_movies"] or [])}
    return counts, links, untrained
