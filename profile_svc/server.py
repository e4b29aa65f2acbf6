"""Wiring of the ProfileService: settings, logging, tracing, the database pool, Redis (DeleteUser),
the gRPC server."""

from __future__ import annotations

import grpc

from profile_svc.analytics import AnalyticsServicer
from profile_svc.analytics_store import AnalyticsStore
from profile_svc.erasure import UserEraser
from profile_svc.experiments import ExperimentServicer
from profile_svc.servicer import ProfileServicer
from profile_svc.sessions import SessionServicer
from profile_svc.store import ProfileStore
from recsys import cache
from recsys.auth.setup import dev_issuer
from recsys.config import Settings
from recsys.db import create_pool
from recsys.grpcserver import run as run_service
from recsys.grpcserver import serve
from recsys.logs import setup_logging
from recsys.telemetry import setup_tracing
from recsys.v1 import (
    analytics_service_pb2_grpc,
    profile_service_pb2,
    profile_service_pb2_grpc,
    session_service_pb2_grpc,
)

SERVICE_NAME = profile_service_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name


async def run(settings: Settings) -> None:
    """Open the pool, then serve; health turns SERVING only once the pool is open."""
    pool = await create_pool(settings.database_url, min_size=2, max_size=10)
    redis = cache.create_client(settings.redis_url, timeout_seconds=1.0)
    store = ProfileStore(pool)
    servicer = ProfileServicer(store, UserEraser(pool, redis))
    sessions = SessionServicer(store, dev_issuer(settings))
    # The Analytics and Experiment services share this process (profile_svc.analytics says why).
    analytics = AnalyticsServicer(AnalyticsStore(pool))
    experiments = ExperimentServicer(pool, settings)

    def register(server: grpc.aio.Server) -> None:
        profile_service_pb2_grpc.add_ProfileServiceServicer_to_server(servicer, server)
        session_service_pb2_grpc.add_SessionServiceServicer_to_server(sessions, server)
        analytics_service_pb2_grpc.add_AnalyticsServiceServicer_to_server(analytics, server)
        analytics_service_pb2_grpc.add_ExperimentServiceServicer_to_server(experiments, server)

    try:
        await serve(
            SERVICE_NAME,
            settings.profile_port,
            register,
            settings,
            metrics_port=settings.profile_metrics_port,
        )
    finally:
        await pool.close()
        await redis.aclose()


def main() -> None:
    settings = Settings.from_env()
    setup_logging("profile-svc", settings.log_level)
    setup_tracing("profile-svc", settings.otel_endpoint, settings.trace_sample_ratio)
    run_service(run(settings))
