"""OpenTelemetry tracing: OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set, else none."""

from __future__ import annotations

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def setup_tracing(service: str, otlp_endpoint: str | None) -> TracerProvider:
    """Install a tracer provider for `service`; spans are exported only with an endpoint.

    Without an endpoint spans are still created (so trace ids reach the logs and Kafka
    headers) but go nowhere, which costs next to nothing.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint)))
    trace.set_tracer_provider(provider)
    return provider


def inject_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka message headers (W3C traceparent)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]
