"""OpenTelemetry tracing: OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set, else none."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes


class HeadSampler(Sampler):
    """Follow the caller's decision; sample `ratio` of new traces, and every new trace that
    links a sampled span.

    The link rule is for the streaming job: a micro-batch span is a root that links the traces
    of the events it wrote (their Kafka `traceparent` headers). A client that asked for a trace
    of its event then finds the batch that stored it, whatever the ratio.
    """

    def __init__(self, ratio: float) -> None:
        self._ratio = ratio
        self._parent_based = ParentBased(TraceIdRatioBased(ratio))

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and any(link.context.trace_flags.sampled for link in links or ()):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return self._parent_based.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"HeadSampler{{ratio={self._ratio}, links sampled}}"


def setup_tracing(service: str, otlp_endpoint: str | None, sample_ratio: float = 1.0) -> TracerProvider:
    """Install a tracer provider for `service`; spans are exported only with an endpoint.

    Without an endpoint spans are still created (so trace ids reach the logs and Kafka
    headers) but go nowhere, which costs next to nothing.
    """
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), sampler=HeadSampler(sample_ratio)
    )
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
