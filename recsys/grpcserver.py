"""Wiring shared by every recsys gRPC server: interceptors, health, reflection, shutdown."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry import trace

from recsys import metrics
from recsys.api import API_SERVICES
from recsys.auth.policy import Authorizer, audience_of
from recsys.auth.principal import Principal
from recsys.auth.setup import authorizer
from recsys.config import Settings
from recsys.errors import ServiceError
from recsys.interceptors import UnaryInterceptor
from recsys.validation import ValidationInterceptor

log = logging.getLogger(__name__)

# Every server reflects the whole public API (recsys.api), so `grpcurl list` through Envoy
# (which sends reflection to any one of them) shows every service.
REFLECTED = [service.full_name for service in API_SERVICES]

# Channel arguments of every recsys gRPC server (and of bench/grpc_floor.py, which measures
# their floor). "latency": the HTTP/2 transport writes as soon as it can instead of batching
# writes ("blend", the default); a bare server's p99 at 500 req/s fell ~0.2 ms (bench/serving.md).
# grpc.max_metadata_size: Envoy accepts 60 KiB of request headers and forwards a transcoded REST
# call's original path as one (x-envoy-original-path); gRPC's default 16 KiB refused a long but
# valid URL (a GET excluding ~900 movies) as RESOURCE_EXHAUSTED before any rule could name a field.
SERVER_OPTIONS: list[tuple[str, str | int]] = [
    ("grpc.optimization_target", "latency"),
    ("grpc.max_metadata_size", 64 * 1024),
]

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# The verified caller of the call being handled (None: anonymous, on a public method).
principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_request_id() -> str:
    """The id of the request being handled (Envoy's x-request-id, or a fresh one)."""
    return request_id_var.get() or uuid.uuid4().hex


# grpcio ships no type stubs, so its classes are Any to mypy.
class ErrorInterceptor(UnaryInterceptor):
    """Sets the request id, checks who is calling, and turns exceptions into statuses, so no
    handler ever crashes a call.

    Auth: the `authorization` bearer token is verified and checked against the method's
    audience from the protos (recsys.auth.policy) before the handler runs; the caller is in
    `principal_var` for the handler. The gateway verified it already: this is defence in depth,
    so a caller that reaches a service port directly gains nothing.

    A ServiceError becomes its own code and message; anything else is logged with its
    traceback and answered INTERNAL without leaking details.

    Cheap per call (it runs on every request, a cache hit costs well under a millisecond): the
    wrapped handler is built once per method and reads the metadata from the call's context,
    and the debug line is only built when debug logging is on.

    Tracing: a W3C `traceparent` sent by the caller (Envoy sends one for every request) becomes
    the parent of the call. With `server_spans` each call gets a SERVER span (rpc.* attributes,
    the gRPC status), sampled as the caller decided (recsys.telemetry.HeadSampler). Without it
    the caller's context is only made current (a non-recording span, a few microseconds), so
    log lines and outgoing calls still carry its trace id. This replaces
    opentelemetry-instrumentation-grpc's server interceptor, which cost ~0.1 ms of a cache
    hit's ~0.8 ms of CPU even when the call was not sampled (bench/serving.md).
    """

    def __init__(self, authorizer: Authorizer, *, server_spans: bool = False) -> None:
        super().__init__()
        self.authorizer = authorizer
        self.server_spans = server_spans

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        tracer = trace.get_tracer(__name__) if self.server_spans else None
        span_name = method.lstrip("/")  # "recsys.v1.RecommenderService/GetRecommendations"
        service, _, name = span_name.rpartition("/")
        audience = audience_of(method)
        authorizer = self.authorizer

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            rid = ""
            traceparent = None
            authorization = None
            for key, value in context.invocation_metadata() or ():
                if key == "x-request-id":
                    rid = str(value)
                elif key == "traceparent":
                    traceparent = value
                elif key == "authorization":
                    authorization = value
            if not rid:
                rid = uuid.uuid4().hex
            request_id_var.set(rid)
            parent = _remote_parent(traceparent) if traceparent else None
            span = None
            token: contextvars.Token[otel_context.Context] | None = None
            if tracer is not None:
                span = tracer.start_span(span_name, context=parent, kind=trace.SpanKind.SERVER)
                if span.is_recording():
                    span.set_attributes(
                        {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name, "request.id": rid}
                    )
                token = otel_context.attach(trace.set_span_in_context(span, parent))
            elif parent is not None:
                token = otel_context.attach(parent)
            code = grpc.StatusCode.OK
            started = time.perf_counter()
            try:
                principal_var.set(authorizer.check(audience, authorization, request))
                return await inner(request, context)
            except ServiceError as err:
                code = err.code
                await context.abort(err.code, err.message, err.trailing_metadata())
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                if context.code() is not None:  # already aborted by the handler itself
                    code = context.code()
                    raise
                log.exception("unhandled error", extra={"method": method, "request_id": rid})
                await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request {rid})")
            finally:
                if token is not None:
                    otel_context.detach(token)
                if span is not None:
                    _end_server_span(span, code)
                metrics.observe_rpc(service, name, code, time.perf_counter() - started)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "handled",
                        extra={"method": method, "ms": round((time.perf_counter() - started) * 1e3, 2)},
                    )

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


# Server errors by OpenTelemetry's RPC conventions; the others are the caller's and leave the
# span's status unset.
_SERVER_FAULTS = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}


def _end_server_span(span: trace.Span, code: grpc.StatusCode) -> None:
    if span.is_recording():
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in _SERVER_FAULTS:
            span.set_status(trace.StatusCode.ERROR, code.name)
    span.end()


def _remote_parent(value: str | bytes) -> otel_context.Context | None:
    """The context of a W3C traceparent (`00-<trace id>-<span id>-<flags>`), None if malformed."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    span = trace.NonRecordingSpan(
        trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags & 1))
    )
    return trace.set_span_in_context(span)


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run a service's main coroutine to completion on uvloop.

    libuv's loop costs less CPU per call than asyncio's selector loop: a cache hit took
    ~0.08 ms (~10%) less of the recommender's CPU, and its p99 direct at 500 req/s fell from
    3.1-3.5 to 2.6-3.4 ms (bench/serving.md). grpc.aio, asyncpg and redis-py run on it unchanged.
    """
    uvloop.run(main)


async def serve(
    service_name: str,
    port: int,
    register: Callable[[grpc.aio.Server], None],
    settings: Settings,
    *,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    grace_seconds: float = 5.0,
    metrics_port: int = 0,
) -> None:
    """Run one service until SIGTERM/SIGINT, then drain in-flight calls and stop.

    `register` adds the servicer(s); it runs after the caller has opened its connections,
    so health turns SERVING only when the service can really answer.

    From `settings`: the token verification every call passes (recsys.auth), the interface to
    listen on (GRPC_BIND_HOST: loopback unless other hosts must reach the service), and a span
    per call when spans go somewhere (an OTLP exporter is set; without one the caller's
    `traceparent` is still propagated, see ErrorInterceptor). Every request is checked against
    the rules of the protos before its handler runs (recsys.validation). Prometheus metrics
    (recsys.metrics) are served on `metrics_port`, on the same interface.
    """
    server_spans = settings.otel_endpoint is not None
    host = settings.grpc_bind_host
    # The first is the outermost: the caller is checked, then the request against the protos'
    # rules (recsys.validation), and the ErrorInterceptor answers whatever either refuses.
    interceptors = [
        ErrorInterceptor(authorizer(settings), server_spans=server_spans),
        ValidationInterceptor(),
    ]
    server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*REFLECTED, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    server.add_insecure_port(f"{host}:{port}")
    metrics.serve_metrics(metrics_port, host)
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
