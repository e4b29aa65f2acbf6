"""Request validation: the rules live in the protos (buf.validate annotations, protovalidate).

ValidationInterceptor checks every request against the rules of its message before the handler
runs and answers INVALID_ARGUMENT naming every bad field, as a handler's own InvalidArgument
does ("limit: must be greater than or equal to 1 and less than or equal to 100, got 0"), so a
client fixes them all in one round trip; the status details carry them as a google.rpc.BadRequest
(recsys.errors). Over REST, Envoy turns that into a 400 whose google.rpc.Status JSON carries the
same message and details.

What the protos cannot say stays in the handlers, which raise InvalidArgument themselves: rules
that need a lookup (the movie is in the catalogue), the clock (an event is not from the future)
or the caller (recsys.auth). PostEvents checks each event of a batch with `violations` (the
request's rules skip the events, see event_service.proto), so a bad event gets its own result.
"""

from __future__ import annotations

from typing import Any

import grpc
import protovalidate
from google.protobuf.message import Message

from recsys.errors import FieldViolation, InvalidArgument
from recsys.interceptors import UnaryInterceptor

# One validator for the process: it compiles each message's rules once and caches them.
_VALIDATOR = protovalidate.Validator()


def violations(message: Message) -> list[FieldViolation]:
    """Every rule of the protos that `message` breaks, each naming its field."""
    return [_field_violation(v, message) for v in _VALIDATOR.collect_violations(message)]


def check(message: Message) -> None:
    """Raise InvalidArgument naming every field of `message` that breaks a rule of the protos."""
    found = violations(message)
    if found:
        raise InvalidArgument(found)


def _field_violation(violation: protovalidate.Violation, message: Message) -> FieldViolation:
    proto = violation.proto
    # A rule on a whole message (a CEL rule across fields) has no field: its id starts with the
    # name of the field it is about ("rating.required_with_rate"), a convention of our protos.
    field = field_path(proto.field) or proto.rule_id.partition(".")[0]
    description = proto.message or proto.rule_id
    names = _enum_names(message, proto.field) if proto.rule_id.startswith("enum.") else None
    if names:
        # protovalidate says "must not be in list [0]"; a client needs the names it may send.
        description = f"must be one of {', '.join(names)}"
    value = violation.field_value
    # The offending number, as the hand-written checks said it ("must be a positive id, got 0").
    if isinstance(value, int | float) and not isinstance(value, bool):
        description += f", got {value:g}" if isinstance(value, float) else f", got {value}"
    return FieldViolation(field, description)


def _enum_names(message: Message, path: Any) -> list[str] | None:
    """The values (but the unspecified 0) of the enum field at `path` of `message`'s type."""
    descriptor, field = message.DESCRIPTOR, None
    for element in path.elements if path is not None else ():
        field = descriptor.fields_by_name.get(element.field_name)
        if field is None:
            return None
        if field.message_type is not None:
            descriptor = field.message_type
    if field is None or field.enum_type is None:
        return None
    return [v.name for v in field.enum_type.values if v.number != 0]


def field_path(path: Any) -> str:
    """A buf.validate.FieldPath as the protos name it: `genres[1]`, `events[0].rating`."""
    out = ""
    for element in path.elements if path is not None else ():
        out += f".{element.field_name}" if out else element.field_name
        if element.subscript is not None:  # an index of a list, or a key of a map
            out += f"[{element.subscript.value}]"
    return out


class ValidationInterceptor(UnaryInterceptor):
    """Checks each request against the rules of its message before the handler runs.

    It raises InvalidArgument, which the outer ErrorInterceptor (recsys.grpcserver) answers as
    INVALID_ARGUMENT; so the caller is authenticated first, and a refused call is one status in
    one place. A message without rules costs one lookup in the validator's cache.
    """

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary

        async def validated(request: Any, context: grpc.aio.ServicerContext) -> Any:
            check(request)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            validated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
