"""Wires the Event service: settings, Postgres catalogue, Kafka producer, Redis, gRPC server."""

from __future__ import annotations

import grpc

from event_svc.catalogue import MovieCatalogue
from event_svc.pending import PendingWriter
from event_svc.producer import EventProducer, producer_config
from event_svc.servicer import EventServicer
from recsys import cache as rcache
from recsys.config import Settings
from recsys.db import create_pool
from recsys.grpcserver import serve
from recsys.logs import setup_logging
from recsys.telemetry import setup_tracing
from recsys.v1 import event_service_pb2, event_service_pb2_grpc

SERVICE_NAME = event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name


async def main() -> None:
    settings = Settings.from_env()
    setup_logging("event-svc", settings.log_level)
    setup_tracing("event-svc", settings.otel_endpoint, settings.trace_sample_ratio)

    pool = await create_pool(settings.database_url, max_size=4)
    catalogue = MovieCatalogue(pool)
    await catalogue.start()
    producer = EventProducer(producer_config(settings.kafka_bootstrap_servers), settings.kafka_topic)
    # The pending-event lists (recsys.pending): best effort, so a short timeout; Redis being away
    # costs request-time freshness only.
    redis = rcache.create_client(settings.redis_url, timeout_seconds=0.1)
    servicer = EventServicer(catalogue, producer, pending=PendingWriter(redis))

    def register(server: grpc.aio.Server) -> None:
        event_service_pb2_grpc.add_EventServiceServicer_to_server(servicer, server)

    async def on_stop() -> None:
        producer.close()
        await redis.aclose()
        await catalogue.stop()
        await pool.close()

    # The caller's traceparent reaches the Kafka headers whether or not this service records spans.
    await serve(
        SERVICE_NAME,
        settings.event_port,
        register,
        settings,
        on_stop=on_stop,
        metrics_port=settings.event_metrics_port,
    )
