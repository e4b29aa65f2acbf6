"""Wiring shared by every recsys gRPC server: interceptors, health, reflection, shutdown."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from recsys.errors import ServiceError
from recsys.v1 import event_service_pb2, profile_service_pb2, recommender_service_pb2

log = logging.getLogger(__name__)

# Every server reflects the whole public API, so `grpcurl list` through Envoy (which sends
# reflection to any one of them) shows all three services.
API_SERVICES = [
    recommender_service_pb2.DESCRIPTOR.services_by_name["RecommenderService"].full_name,
    event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
    profile_service_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name,
]

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def current_request_id() -> str:
    """The id of the request being handled (Envoy's x-request-id, or a fresh one)."""
    return request_id_var.get() or uuid.uuid4().hex


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Sets the request id and turns exceptions into statuses, so no handler ever crashes a call.

    A ServiceError becomes its own code and message; anything else is logged with its
    traceback and answered INTERNAL without leaking details.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        metadata = dict(details.invocation_metadata or ())
        method = details.method

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            rid = str(metadata.get("x-request-id") or uuid.uuid4().hex)
            request_id_var.set(rid)
            started = time.perf_counter()
            try:
                return await inner(request, context)
            except ServiceError as err:
                await context.abort(err.code, err.message)
            except asyncio.CancelledError:
                raise
            except Exception:
                if context.code() is not None:  # already aborted by the handler itself
                    raise
                log.exception("unhandled error", extra={"method": method, "request_id": rid})
                await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request {rid})")
            finally:
                log.debug(
                    "handled",
                    extra={"method": method, "ms": round((time.perf_counter() - started) * 1e3, 2)},
                )

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def serve(
    service_name: str,
    port: int,
    register: Callable[[grpc.aio.Server], None],
    *,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    grace_seconds: float = 5.0,
) -> None:
    """Run one service until SIGTERM/SIGINT, then drain in-flight calls and stop.

    `register` adds the servicer(s); it runs after the caller has opened its connections,
    so health turns SERVING only when the service can really answer.
    """
    server = grpc.aio.server(interceptors=[aio_server_interceptor(), ErrorInterceptor()])
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*API_SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    server.add_insecure_port(f"[::]:{port}")
    await server.start()
    for name in (service_name, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", extra={"grpc_service": service_name, "port": port})

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()

    log.info("shutting down", extra={"grpc_service": service_name})
    # NOT_SERVING first, so Envoy and clients stop sending new calls while we drain.
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_seconds)
    if on_stop is not None:
        await on_stop()
