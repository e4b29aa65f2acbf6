"""EventService handlers: validate, produce durably, answer with the event id (or one per event)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import grpc

from event_svc.catalogue import MovieCatalogue
from event_svc.events import MAX_AGE, Clock, Event, clock_violations, to_event, utc_now
from event_svc.pending import PendingWriter
from event_svc.producer import EventProducer, Headers
from recsys.errors import FieldViolation, InvalidArgument, Unavailable
from recsys.grpcserver import principal_var
from recsys.telemetry import inject_headers
from recsys.v1 import event_service_pb2 as pb
from recsys.v1 import event_service_pb2_grpc as pb_grpc
from recsys.validation import violations

log = logging.getLogger(__name__)

OK = grpc.StatusCode.OK.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]


@dataclass
class _Slot:
    """One event of a batch on its way: its result, and the event once it passed the checks."""

    result: pb.EventResult
    event: Event | None = None


def _invalid(result: pb.EventResult, violations: list[FieldViolation]) -> None:
    result.code = INVALID_ARGUMENT
    result.message = "; ".join(str(v) for v in violations)
    result.violations.extend(pb.EventViolation(field=v.field, description=v.description) for v in violations)


def _max_age() -> timedelta | None:
    """How old an event the caller may send: any age for a service (a backfill), else MAX_AGE."""
    principal = principal_var.get()
    return None if principal is not None and principal.is_service else MAX_AGE


class EventServicer(pb_grpc.EventServiceServicer):
    """A thin durable-ack path: everything else happens in the streaming job."""

    def __init__(
        self,
        catalogue: MovieCatalogue,
        producer: EventProducer,
        clock: Clock = utc_now,
        pending: PendingWriter | None = None,
    ) -> None:
        self._catalogue = catalogue
        self._producer = producer
        self._clock = clock
        self._pending = pending

    async def PostEvent(
        self, request: pb.PostEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.PostEventResponse:
        # The protos' rules were checked before the call reached here (recsys.validation).
        now = self._clock()
        bad = clock_violations(request, now, _max_age())
        if not await self._catalogue.exists(request.movie_id):
            bad.append(FieldViolation("movie_id", f"no movie {request.movie_id} in the catalogue"))
        if bad:
            raise InvalidArgument(bad)
        event = to_event(request, now)
        await self._producer.send(event.key(), event.value(), list(inject_headers()))
        if self._pending is not None:
            await self._pending.push([event])
        return pb.PostEventResponse(event_id=event.event_id)

    async def PostEvents(
        self, request: pb.PostEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.PostEventsResponse:
        """Every event checked on its own; the valid ones produced together, then awaited together.

        Who may post what: the interceptor has checked the request's `user_id` against the
        token (a user token must name itself there). Each event is then checked here: a user
        token may post only its own events; another user's event gets PERMISSION_DENIED on its
        own and the rest of the batch goes on (a service token may post for anyone).

        Validation: the interceptor checked the request's own rules (1 to 500 events, user_id),
        but not the events' (event_service.proto skips them), so one bad event cannot fail the
        batch; each event is checked here against the same rules of PostEventRequest, after it
        took the request's user_id, and answered with its own violations.
        """
        principal = principal_var.get()
        now, max_age = self._clock(), _max_age()
        slots: list[_Slot] = []
        for i, item in enumerate(request.events):
            result = pb.EventResult(index=i)
            slots.append(_Slot(result))
            if item.user_id == 0 and request.user_id:
                own = pb.PostEventRequest()
                own.CopyFrom(item)
                own.user_id = request.user_id
                item = own
            result.event_id = item.event_id
            if principal is not None and item.user_id > 0 and not principal.may_act_for(item.user_id):
                result.code = PERMISSION_DENIED
                result.message = f"the token of {principal.subject!r} may not act for user {item.user_id}"
                continue
            bad = violations(item) + clock_violations(item, now, max_age)
            if item.movie_id > 0:
                try:
                    if not await self._catalogue.exists(item.movie_id):
                        bad.append(FieldViolation("movie_id", f"no movie {item.movie_id} in the catalogue"))
                except Unavailable as err:
                    result.code, result.message = UNAVAILABLE, err.message
                    continue
            if bad:
                _invalid(result, bad)
                continue
            event = slots[-1].event = to_event(item, now)
            result.event_id = event.event_id

        # An event id twice in one batch is one event: produced once, both answered alike.
        unique: dict[str, Event] = {}
        for slot in slots:
            if slot.event is not None:
                unique.setdefault(slot.event.event_id, slot.event)
        events = list(unique.values())
        headers: Headers = list(inject_headers())
        outcomes = await self._producer.send_many([(e.key(), e.value(), headers) for e in events])
        failed = {e.event_id: err for e, err in zip(events, outcomes, strict=True) if err is not None}
        if self._pending is not None:
            await self._pending.push(e for e in events if e.event_id not in failed)

        response = pb.PostEventsResponse()
        for slot in slots:
            if slot.event is not None and slot.event.event_id in failed:
                slot.result.code, slot.result.message = UNAVAILABLE, failed[slot.event.event_id].message
            if slot.result.code == OK:
                response.accepted += 1
            else:
                response.rejected += 1
        response.results.extend(slot.result for slot in slots)
        return response
