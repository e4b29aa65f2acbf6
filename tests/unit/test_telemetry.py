"""Head sampling: the caller's decision, the ratio for new traces, and sampled links."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision

from recsys.telemetry import HeadSampler

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C


def remote(sampled: bool) -> trace.SpanContext:
    return trace.SpanContext(
        TRACE_ID, 0x00F067AA0BA902B7, is_remote=True, trace_flags=trace.TraceFlags(1 if sampled else 0)
    )


def decide(sampler: HeadSampler, parent: trace.SpanContext | None = None, links=()) -> Decision:
    context = trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else None
    return sampler.should_sample(context, TRACE_ID, "op", links=list(links)).decision


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_the_callers_decision_wins_over_the_ratio(ratio: float) -> None:
    sampler = HeadSampler(ratio)
    assert decide(sampler, remote(sampled=True)) == Decision.RECORD_AND_SAMPLE
    assert decide(sampler, remote(sampled=False)) == Decision.DROP


def test_new_traces_follow_the_ratio() -> None:
    assert decide(HeadSampler(1.0)) == Decision.RECORD_AND_SAMPLE
    assert decide(HeadSampler(0.0)) == Decision.DROP
    # A ratio keeps that share of trace ids (the decision is a function of the id).
    sampler = HeadSampler(0.25)
    kept = sum(
        sampler.should_sample(None, (i * 0x9E3779B97F4A7C15) % (1 << 128), "op").decision.is_sampled()
        for i in range(1, 4001)
    )
    assert 800 < kept < 1200


def test_a_new_trace_linking_a_sampled_span_is_sampled() -> None:
    sampler = HeadSampler(0.0)
    assert decide(sampler, links=[trace.Link(remote(sampled=True))]) == Decision.RECORD_AND_SAMPLE
    assert decide(sampler, links=[trace.Link(remote(sampled=False))]) == Decision.DROP
    # A parent's decision still comes first.
    assert decide(sampler, remote(sampled=False), links=[trace.Link(remote(sampled=True))]) == Decision.DROP
