import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from recsys.logs import JsonFormatter


def test_json_line_carries_trace_ids_and_extra_fields() -> None:
    tracer = TracerProvider().get_tracer("test")
    formatter = JsonFormatter("recommender")
    record = logging.makeLogRecord({"name": "x", "levelname": "INFO", "msg": "served %s", "args": (3,)})
    record.request_id = "abc"
    with tracer.start_as_current_span("span") as span:
        line = json.loads(formatter.format(record))
        ctx = span.get_span_context()
    assert line["msg"] == "served 3"
    assert line["service"] == "recommender"
    assert line["request_id"] == "abc"
    assert line["trace_id"] == format(ctx.trace_id, "032x")
    assert line["span_id"] == format(ctx.span_id, "016x")


def test_no_trace_ids_outside_a_span() -> None:
    record = logging.makeLogRecord({"name": "x", "levelname": "WARNING", "msg": "hi"})
    line = json.loads(JsonFormatter("svc").format(record))
    assert "trace_id" not in line
    assert line["level"] == "warning"
