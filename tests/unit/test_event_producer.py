"""The producer answers UNAVAILABLE within its bound when Kafka cannot be reached."""

import time

import pytest

from event_svc.producer import EventProducer, producer_config
from recsys.errors import Unavailable


async def test_unreachable_kafka_is_unavailable_in_bounded_time() -> None:
    producer = EventProducer(producer_config("127.0.0.1:1", delivery_timeout_ms=1000), "movie-events")
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await producer.send(b"1", b"{}", [])
    assert time.monotonic() - started < 4.0
    producer.close(timeout_s=0.5)
