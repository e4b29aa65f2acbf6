"""An asyncio front for confluent-kafka's idempotent producer.

`send()` returns only when the broker has acknowledged the message (acks=all), and
`send_many()` when the broker has acknowledged or refused every message of a batch, resolved
from the delivery callbacks; a background thread serves the callbacks by polling. A
message that cannot be delivered within `delivery_timeout_ms` fails with Unavailable;
nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from recsys import metrics
from recsys.errors import Unavailable

log = logging.getLogger(__name__)


Headers = list[tuple[str, str | bytes | None]]


def producer_config(bootstrap_servers: str, delivery_timeout_ms: int = 5000) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,  # implies acks=all, retries, max.in.flight <= 5, in order
        "acks": "all",
        "message.timeout.ms": delivery_timeout_ms,  # the bound on a produce, retries included
        # A PostEvents call produces its events in one go: librdkafka holds each partition's
        # queue up to linger.ms so they go to the broker as a few large MessageSets (one
        # request per partition) instead of many small ones. 5 ms is the price a lone event
        # pays; at thousands of events/s it buys fewer, bigger produce requests.
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 200_000,
        "compression.type": "lz4",
        "socket.connection.setup.timeout.ms": min(delivery_timeout_ms, 3000),
        "client.id": "event-svc",
    }


class EventProducer:
    """Produce and await the delivery reports: one awaitable for a whole batch of messages."""

    def __init__(self, config: dict[str, Any], topic: str) -> None:
        self._config = config
        self._topic = topic
        self._producer = Producer(config, logger=log)
        self._running = True
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._poller.start()
        self._timeout_s = config.get("message.timeout.ms", 5000) / 1000
        self._fatal = False

    def _poll_loop(self) -> None:
        while self._running:
            self._producer.poll(0.1)

    def _replace_if_fatal(self) -> None:
        """An idempotent producer that hit a fatal error (e.g. fenced) must be replaced."""
        if self._fatal:
            log.error("producer hit a fatal error; creating a new one")
            old, self._producer = self._producer, Producer(self._config, logger=log)
            self._fatal = False
            old.flush(0)

    async def send(self, key: bytes, value: bytes, headers: Headers) -> None:
        """One message; returns once the broker has it, else raises Unavailable."""
        (error,) = await self.send_many([(key, value, headers)])
        if error is not None:
            raise error

    async def send_many(self, messages: Sequence[tuple[bytes, bytes, Headers]]) -> list[Unavailable | None]:
        """Produce every message, then wait for all their delivery reports together.

        Returns one outcome per message, in order: None once the broker has acknowledged it,
        Unavailable when it is not durable (the caller may retry it with the same event id).
        The poll thread counts the reports down and wakes the event loop once, when the last
        one is in, so a batch of 500 costs one wake-up, not 500.
        """
        self._replace_if_fatal()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        outcomes: list[Unavailable | None] = [None] * len(messages)
        reported = [False] * len(messages)
        lock = threading.Lock()
        remaining = len(messages)

        def settle(i: int, outcome: Unavailable | None) -> None:
            nonlocal remaining
            with lock:
                if reported[i]:
                    return
                reported[i] = True
                outcomes[i] = outcome
                remaining -= 1
                last = remaining == 0
            if last:
                loop.call_soon_threadsafe(finish)

        def finish() -> None:
            if not done.done():
                done.set_result(None)

        def on_delivery(i: int, err: KafkaError | None, _msg: Message) -> None:
            # Runs on the poll thread.
            if err is None:
                settle(i, None)
                return
            if err.fatal():
                self._fatal = True
            log.warning("delivery failed", extra={"error": str(err), "code": err.code()})
            settle(i, Unavailable("event log unavailable, retry with the same event_id"))

        for i, (key, value, headers) in enumerate(messages):
            try:
                self._producer.produce(
                    self._topic, key=key, value=value, headers=headers, on_delivery=partial(on_delivery, i)
                )
            except BufferError:
                settle(i, Unavailable("event queue is full, retry later"))
            except KafkaException as err:
                settle(i, Unavailable(f"event log unavailable: {err.args[0]}"))
        if not messages:
            return outcomes
        started = time.perf_counter()
        try:
            # The delivery reports come within message.timeout.ms; the margin covers polling.
            await asyncio.wait_for(asyncio.shield(done), self._timeout_s + 2.0)
        except TimeoutError:
            for i in range(len(messages)):
                settle(i, Unavailable("event log did not confirm in time, retry with the same event_id"))
        metrics.KAFKA_PRODUCE_SECONDS.observe(time.perf_counter() - started)
        with lock:
            result = list(outcomes)
        failed = sum(o is not None for o in result)
        metrics.KAFKA_PRODUCED.labels("acknowledged").inc(len(result) - failed)
        if failed:
            metrics.KAFKA_PRODUCED.labels("failed").inc(failed)
        return result

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (bounded), then stop the poll thread."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.error("messages left undelivered at shutdown", extra={"count": remaining})
        self._running = False
        self._poller.join(timeout=2.0)
