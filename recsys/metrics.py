"""Prometheus metrics of a service process, on /metrics at <SERVICE>_METRICS_PORT.

RED per RPC from one histogram: rate and errors are its `_count` by `grpc_code`, duration its
buckets (recorded by recsys.grpcserver's ErrorInterceptor, which sees every call's final code).
Beside it, what an operator asks of each service: the recommender's answers by tier (a cache
hit is tier `cache`), the event service's wait for Kafka's acknowledgement, and the streaming
job's micro-batches (duration, records by outcome, consumer lag). Prometheus scrapes them
(compose); the local stack's tests scrape them too.
"""

from __future__ import annotations

import functools
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

# From a cache hit (~1 ms) to a slow miss or a Kafka wait (seconds).
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

RPC_SECONDS = Histogram(
    "recsys_rpc_server_handling_seconds",
    "Time to answer a gRPC call, by service, method and status code.",
    ("grpc_service", "grpc_method", "grpc_code"),
    buckets=LATENCY_BUCKETS,
)
RECOMMENDATIONS = Counter(
    "recsys_recommendations_total",
    "Recommendation lists served, by the tier that answered (cache = a cache hit).",
    ("tier",),
)
KAFKA_PRODUCE_SECONDS = Histogram(
    "recsys_kafka_produce_seconds",
    "From producing a batch of events to Kafka's acknowledgement of all of them.",
    buckets=LATENCY_BUCKETS,
)
KAFKA_PRODUCED = Counter(
    "recsys_kafka_produced_events_total",
    "Events produced, by outcome (acknowledged or failed).",
    ("outcome",),
)

STREAM_BATCH_SECONDS = Histogram(
    "recsys_streaming_batch_seconds",
    "A micro-batch of the speed layer: its Spark tasks' per-user work and the driver's bookkeeping.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
STREAM_RECORDS = Counter(
    "recsys_streaming_records_total",
    "Event-topic records the speed layer processed, by outcome: stored, replayed (an event id "
    "already stored), malformed.",
    ("outcome",),
)
STREAM_LAG = Gauge(
    "recsys_streaming_consumer_lag_records",
    "Records in Kafka past the end offsets of the last micro-batch, when it was planned.",
)


def observe_stream_batch(seconds: float, events: int, inserted: int, malformed: int) -> None:
    STREAM_BATCH_SECONDS.observe(seconds)
    STREAM_RECORDS.labels("stored").inc(inserted)
    STREAM_RECORDS.labels("replayed").inc(max(events - inserted, 0))
    STREAM_RECORDS.labels("malformed").inc(malformed)


# A labelled child per series, looked up once: these run on every request.
@functools.cache
def _rpc_series(service: str, method: str, code: grpc.StatusCode) -> Any:
    return RPC_SECONDS.labels(service, method, code.name)


@functools.cache
def _answers(tier: str) -> Any:
    return RECOMMENDATIONS.labels(tier)


def observe_rpc(service: str, method: str, code: grpc.StatusCode, seconds: float) -> None:
    _rpc_series(service, method, code).observe(seconds)


def answered(tier: str) -> None:
    """One recommendation list served by `tier` (cache, realtime, batch, popular)."""
    _answers(tier).inc()


def serve_metrics(port: int, host: str) -> None:
    """/metrics on `host:port` from a daemon thread (0: no endpoint)."""
    if port:
        start_http_server(port, addr=host)
