"""The event schemas of the Spark jobs, from one table of interaction columns."""

from __future__ import annotations

from pyspark.sql import types as T

# rt_user_interactions' columns as Spark types, with their nullability.
_INTERACTION_FIELDS = {
    "event_id": (T.StringType(), False),
    "user_id": (T.LongType(), False),
    "movie_id": (T.LongType(), False),
    "event_type": (T.StringType(), False),
    "rating": (T.DoubleType(), True),
    "request_id": (T.StringType(), True),
    "occurred_at": (T.TimestampType(), False),
    "ingested_at": (T.TimestampType(), True),
}


def interaction_schema(*columns: str) -> T.StructType:
    """A schema of some interaction columns, in the order given."""
    return T.StructType([T.StructField(c, *_INTERACTION_FIELDS[c]) for c in columns])


# Every archived column (batch.archive's Parquet).
ARCHIVE_SCHEMA = interaction_schema(*_INTERACTION_FIELDS)
# What training reads (batch.als.data): no request ids or ingestion times.
TRAINING_SCHEMA = interaction_schema("event_id", "user_id", "movie_id", "event_type", "rating", "occurred_at")

# The Kafka value written by event_svc.events.Event (recsys.domain.events.SCHEMA_VERSION): the same columns,
# the time as epoch millis; JSON gives no non-null guarantee, so every field is nullable.
KAFKA_EVENT_SCHEMA = T.StructType(
    [
        T.StructField("schema", T.IntegerType()),
        *(
            T.StructField(c, _INTERACTION_FIELDS[c][0])
            for c in ("event_id", "user_id", "movie_id", "event_type", "rating", "request_id")
        ),
        T.StructField("occurred_at_ms", T.LongType()),
    ]
)
