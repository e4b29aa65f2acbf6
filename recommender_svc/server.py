"""Wiring of the RecommenderService: settings, pool, Redis, the Profile channel, the log writer."""

from __future__ import annotations

import gc
import logging

import grpc
from redis.exceptions import RedisError

from recommender_svc.cache import RecommendationCache
from recommender_svc.catalogue import CatalogueServicer
from recommender_svc.experiments import ExperimentReader
from recommender_svc.freshness import PendingFoldIn
from recommender_svc.retired import RetiredSet
from recommender_svc.servelog import ServeLogWriter
from recommender_svc.servicer import RecommenderServicer
from recommender_svc.store import MovieStore
from recsys import cache as rcache
from recsys import grpcclient
from recsys.auth.setup import service_credentials
from recsys.config import Settings
from recsys.db import create_pool
from recsys.grpcserver import run as run_service
from recsys.grpcserver import serve
from recsys.logs import setup_logging
from recsys.telemetry import setup_tracing
from recsys.v1 import (
    catalogue_service_pb2_grpc,
    profile_service_pb2_grpc,
    recommender_service_pb2,
    recommender_service_pb2_grpc,
)

log = logging.getLogger(__name__)

SERVICE_NAME = recommender_service_pb2.DESCRIPTOR.services_by_name["RecommenderService"].full_name


async def run(settings: Settings) -> None:
    """Open Postgres, Redis and the Profile channel, then serve until SIGTERM.

    Health turns SERVING only after the pool is open. Redis is checked but not required:
    the cache fails open, so the service answers from Postgres while Redis is down.
    """
    pool = await create_pool(settings.database_url, min_size=2, max_size=10)
    redis = rcache.create_client(settings.redis_url)
    try:
        await redis.ping()
    except (RedisError, OSError) as err:
        log.warning("redis not reachable at start; serving without cache", extra={"error": repr(err)})
    # GetPreferenceVector is for the mesh's services: the channel sends this service's token.
    profile_channel = grpcclient.channel(
        settings.profile_addr, credentials=service_credentials(settings, "recommender")
    )
    serve_log = ServeLogWriter(pool)
    serve_log.start()
    store = MovieStore(pool)
    cache = RecommendationCache(redis, settings.cache_ttl_seconds)
    # One retired set for both services: a retirement applies to this replica's next serve.
    retired = RetiredSet(store.retired)
    servicer = RecommenderServicer(
        store,
        cache,
        profile_service_pb2_grpc.ProfileServiceStub(profile_channel),
        serve_log,
        pending=PendingFoldIn(pool),
        retired=retired,
        experiments=ExperimentReader(pool),
    )

    def register(server: grpc.aio.Server) -> None:
        recommender_service_pb2_grpc.add_RecommenderServiceServicer_to_server(servicer, server)
        catalogue_service_pb2_grpc.add_CatalogueServiceServicer_to_server(
            CatalogueServicer(pool, cache, retired), server
        )
        # Everything allocated so far (modules, descriptors, the pools: ~60k objects) lives as
        # long as the process. Freezing it keeps it out of the cyclic GC, so an occasional full
        # collection while serving scans only what serving allocated (~1 ms) instead of all of
        # it (~15 ms, a stall of every in-flight call).
        gc.collect()
        gc.freeze()

    try:
        # Log lines and the Profile call carry the caller's trace id whether or not this service
        # records spans (ErrorInterceptor makes its `traceparent` current).
        await serve(
            SERVICE_NAME,
            settings.recommender_port,
            register,
            settings,
            metrics_port=settings.recommender_metrics_port,
        )
    finally:
        # The server has drained in-flight calls; write what they logged, then close.
        await servicer.drain()
        await serve_log.close()
        await profile_channel.close()
        await redis.aclose()
        await pool.close()


def main() -> None:
    settings = Settings.from_env()
    setup_logging("recommender-svc", settings.log_level)
    setup_tracing("recommender-svc", settings.otel_endpoint, settings.trace_sample_ratio)
    run_service(run(settings))
