"""An asyncio front for confluent-kafka's idempotent producer.

`send()` returns only when the broker has acknowledged the message (acks=all), resolved
from the delivery callback; a background thread serves the callbacks by polling. A
message that cannot be delivered within `delivery_timeout_ms` fails with Unavailable;
nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from recsys.errors import Unavailable

log = logging.getLogger(__name__)


def producer_config(bootstrap_servers: str, delivery_timeout_ms: int = 5000) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,  # implies acks=all, retries, max.in.flight <= 5, in order
        "acks": "all",
        "message.timeout.ms": delivery_timeout_ms,  # the bound on a produce, retries included
        "linger.ms": 2,
        "compression.type": "lz4",
        "socket.connection.setup.timeout.ms": min(delivery_timeout_ms, 3000),
        "client.id": "event-svc",
    }


class EventProducer:
    """Produce and await the delivery report."""

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

    async def send(self, key: bytes, value: bytes, headers: list[tuple[str, str | bytes | None]]) -> None:
        self._replace_if_fatal()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            # Runs on the poll thread: hand the outcome to the event loop.
            if err is not None and err.fatal():
                self._fatal = True

            def resolve() -> None:
                if fut.done():
                    return
                if err is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(KafkaException(err))

            loop.call_soon_threadsafe(resolve)

        try:
            self._producer.produce(
                self._topic, key=key, value=value, headers=headers, on_delivery=on_delivery
            )
        except BufferError as err:
            raise Unavailable("event queue is full, retry later") from err
        except KafkaException as err:
            raise Unavailable(f"event log unavailable: {err.args[0]}") from err
        try:
            # The delivery report comes within message.timeout.ms; the margin covers polling.
            await asyncio.wait_for(asyncio.shield(fut), self._timeout_s + 2.0)
        except TimeoutError as err:
            raise Unavailable("event log did not confirm in time, retry with the same event_id") from err
        except KafkaException as err:
            kerr: KafkaError = err.args[0]
            log.warning("delivery failed", extra={"error": str(kerr), "code": kerr.code()})
            raise Unavailable("event log unavailable, retry with the same event_id") from err

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (bounded), then stop the poll thread."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            log.error("messages left undelivered at shutdown", extra={"count": remaining})
        self._running = False
        self._poller.join(timeout=2.0)
