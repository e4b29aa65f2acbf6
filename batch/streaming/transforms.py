"""The streaming job's transforms: Kafka records -> events -> what to write.

decode_events is the Spark half: one narrow stage (no shuffle), so the job collects a batch in
a single Spark job. split_batch and feedback_rows are the driver half, over the collected rows
(a batch is seconds of events; dropping repeated ids on Spark would cost a shuffle). The job
runs exactly these functions and touches nothing else before the sink, so the tests run them
on tiny inline frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from recsys.domain.events import (
    EVENT_TYPES,
    FEEDBACK_TYPES,
    MAX_EVENT_ID_LEN,
    RATE,
    RATING_MAX,
    RATING_MIN,
    SCHEMA_VERSION,
)
from recsys.domain.spark import KAFKA_EVENT_SCHEMA

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
FEEDBACK_FIELDS = ("event_id", "request_id", "user_id", "movie_id", "event_type", "occurred_at")


def _valid(e: Column) -> Column:
    rating_ok = F.when(
        e.event_type == RATE, e.rating.isNotNull() & e.rating.between(RATING_MIN, RATING_MAX)
    ).otherwise(e.rating.isNull())
    return (
        (e["schema"] == SCHEMA_VERSION)
        & e.event_id.isNotNull()
        & (F.length(e.event_id).between(1, MAX_EVENT_ID_LEN))
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
        F.from_json(F.col("value").cast("string"), KAFKA_EVENT_SCHEMA).alias("e"),
        traceparent.alias("traceparent"),
        "partition",
        "offset",
    )


def decode_events(raw: DataFrame) -> DataFrame:
    """Every Kafka record decoded, with `valid` telling whether it is a schema-1 event."""
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


def split_batch(records: Iterable[Row]) -> tuple[list[dict[str, Any]], int]:
    """Collected decode_events rows -> (the valid events, the first of each id; how many were
    malformed).

    A replayed or retried event (same id) appears once; a record that is not a valid schema-1
    event is counted and left out.
    """
    events: dict[str, dict[str, Any]] = {}
    malformed = 0
    for record in records:
        if not record["valid"]:
            malformed += 1
            continue
        events.setdefault(record["event_id"], {k: record[k] for k in EVENT_COLUMNS})
    return list(events.values()), malformed


def feedback_rows(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events that respond to a served list (they carry its request id and are a choice),
    as recommendation_feedback rows."""
    return [
        {k: e[k] for k in FEEDBACK_FIELDS}
        for e in events
        if e["request_id"] is not None and e["event_type"] in FEEDBACK_TYPES
    ]
