"""EventService handlers: validate, produce durably, answer with the event id."""

from __future__ import annotations

import logging

import grpc

from event_svc.catalogue import MovieCatalogue
from event_svc.events import Clock, check_request, utc_now
from event_svc.producer import EventProducer
from recsys.telemetry import inject_headers
from recsys.v1 import event_service_pb2 as pb
from recsys.v1 import event_service_pb2_grpc as pb_grpc
from recsys.validation import Checks

log = logging.getLogger(__name__)


class EventServicer(pb_grpc.EventServiceServicer):
    """A thin durable-ack path: everything else happens in the streaming job."""

    def __init__(self, catalogue: MovieCatalogue, producer: EventProducer, clock: Clock = utc_now) -> None:
        self._catalogue = catalogue
        self._producer = producer
        self._clock = clock

    async def PostEvent(
        self, request: pb.PostEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.PostEventResponse:
        check = Checks()
        event = check_request(request, check, self._clock())
        if request.movie_id > 0 and not await self._catalogue.exists(request.movie_id):
            check.fail("movie_id", f"no movie {request.movie_id} in the catalogue")
        check.done()
        assert event is not None
        await self._producer.send(event.key(), event.value(), list(inject_headers()))
        return pb.PostEventResponse(event_id=event.event_id)
