"""Pure DataFrame transforms of the streaming job: Kafka records -> events -> what to write.

Each takes and returns a DataFrame and touches nothing outside, so the tests run them on
tiny inline frames.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType

# The Kafka value written by event_svc.events.Event (schema version 1).
SCHEMA_VERSION = 1
EVENT_SCHEMA = StructType(
    [
        StructField("schema", IntegerType()),
        StructField("event_id", StringType()),
        StructField("user_id", LongType()),
        StructField("movie_id", LongType()),
        StructField("event_type", StringType()),
        StructField("rating", DoubleType()),
        StructField("request_id", StringType()),
        StructField("occurred_at_ms", LongType()),
    ]
)
EVENT_TYPES = ("view", "click", "watch", "rate", "like", "dislike")
# Events that answer a served list and so count as feedback on it (a view is not a choice).
FEEDBACK_TYPES = ("click", "watch", "rate", "like", "dislike")

EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "movie_id",
    "event_type",
    "rating",
    "request_id",
    "occurred_at",
    "traceparent",
)


def _valid(e: Column) -> Column:
    rating_ok = F.when(e.event_type == "rate", e.rating.isNotNull() & e.rating.between(0.5, 5.0)).otherwise(
        e.rating.isNull()
    )
    return (
        (e["schema"] == SCHEMA_VERSION)
        & e.event_id.isNotNull()
        & (F.length(e.event_id).between(1, 64))
        & (e.user_id > 0)
        & (e.movie_id > 0)
        & e.event_type.isin(*EVENT_TYPES)
        & e.occurred_at_ms.isNotNull()
        & rating_ok
    )


def _decoded(raw: DataFrame) -> DataFrame:
    traceparent = (
        F.filter("headers", lambda h: h.key == "traceparent")[0].value.cast("string")
        if "headers" in raw.columns
        else F.lit(None).cast("string")
    )
    return raw.select(
        F.from_json(F.col("value").cast("string"), EVENT_SCHEMA).alias("e"),
        traceparent.alias("traceparent"),
        "partition",
        "offset",
    )


def decode_events(raw: DataFrame) -> DataFrame:
    """Every Kafka record decoded, with `valid` telling whether it is a schema-1 event.

    One narrow stage (no shuffle), so the job collects a batch in a single Spark job and
    splits valid from malformed and drops repeated ids on the driver; parse_events is the
    same thing as a DataFrame.
    """
    decoded = _decoded(raw)
    e = F.col("e")
    return decoded.select(
        e.event_id.alias("event_id"),
        e.user_id.alias("user_id"),
        e.movie_id.alias("movie_id"),
        e.event_type.alias("event_type"),
        e.rating.alias("rating"),
        F.nullif(e.request_id, F.lit("")).alias("request_id"),
        F.timestamp_millis(e.occurred_at_ms).alias("occurred_at"),
        "traceparent",
        "partition",
        "offset",
        F.coalesce(e.isNotNull() & _valid(e), F.lit(False)).alias("valid"),
    )


def parse_events(raw: DataFrame) -> DataFrame:
    """Kafka records (key, value, headers...) -> valid events, one row per event id.

    A replayed or retried event (same id) appears once; records that are not a valid
    schema-1 event are left out (see `malformed_records`).
    """
    return decode_events(raw).where("valid").select(*EVENT_COLUMNS).dropDuplicates(["event_id"])


def malformed_records(raw: DataFrame) -> DataFrame:
    """The records parse_events leaves out, with where they are in the topic."""
    return decode_events(raw).where(~F.col("valid")).select("partition", "offset")


def feedback_events(events: DataFrame) -> DataFrame:
    """Events that respond to a served list: they carry its request id."""
    return events.where(F.col("request_id").isNotNull() & F.col("event_type").isin(*FEEDBACK_TYPES))


def touched_users(events: DataFrame) -> DataFrame:
    """The distinct users of a batch, whose profiles must be recomputed."""
    return events.select("user_id").distinct()
