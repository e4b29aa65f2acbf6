"""Every validation rule written in the protos, each with a request that breaks it.

    from tests.proto_rules import CASES      # one Case per rule of every annotated field
    for case in CASES: case.request, case.field, case.rule, case.method

The rules are read from the descriptors (the `buf.validate` options of each RPC's request
message, predefined rules such as recsys.v1.no_nul included), not listed by hand: a rule added to
a proto gets its case here, and a rule of a kind this module cannot break yet fails at import
with what to teach it. Each case is a valid request of the RPC (VALID, checked valid by
tests/unit/test_proto_rules.py) with only the one field broken, so the answer must name that
field. Rules on a whole message (CEL across fields) need an example in MESSAGE_RULE_EXAMPLES.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor, field_mask_pb2, message_factory
from google.protobuf.message import Message

from buf.validate import validate_pb2
from recsys.api import API_SERVICES
from recsys.v1 import event_service_pb2

USER = 900_000_001
_EVENT = {"user_id": USER, "movie_id": 1, "type": event_service_pb2.EVENT_TYPE_CLICK}

# A request of every RPC that breaks no rule (the unit test checks that), keyed by full method name.
VALID: dict[str, dict[str, Any]] = {
    "recsys.v1.RecommenderService.GetRecommendations": {"user_id": USER, "limit": 5},
    "recsys.v1.RecommenderService.GetSimilarMovies": {"movie_id": 1, "limit": 5},
    "recsys.v1.RecommenderService.GetMovie": {"movie_id": 1},
    "recsys.v1.RecommenderService.ListMovies": {"query": "dragon"},
    "recsys.v1.EventService.PostEvent": _EVENT,
    "recsys.v1.EventService.PostEvents": {"user_id": USER, "events": [_EVENT]},
    "recsys.v1.ProfileService.CreateUser": {"display_name": "ada"},
    "recsys.v1.ProfileService.GetProfile": {"user_id": USER},
    "recsys.v1.ProfileService.GetPreferenceVector": {"user_id": USER},
    "recsys.v1.ProfileService.DeleteUser": {"user_id": USER},
    "recsys.v1.SessionService.CreateSession": {"user_id": USER},
    "recsys.v1.CatalogueService.CreateMovie": {"title": "A new film", "year": 2026, "genres": ["Drama"]},
    "recsys.v1.CatalogueService.UpdateMovie": {"movie_id": 1, "title": "A new title"},
    "recsys.v1.CatalogueService.RetireMovie": {"movie_id": 1},
    "recsys.v1.CatalogueService.RestoreMovie": {"movie_id": 1},
    "recsys.v1.AnalyticsService.GetDashboard": {"days": 7, "recent_minutes": 60},
    "recsys.v1.ExperimentService.StartExperiment": {
        "name": "exp-1",
        "candidate_version": "v1",
        "candidate_share": 0.5,
    },
    "recsys.v1.ExperimentService.StopExperiment": {"name": "exp-1"},
    "recsys.v1.ExperimentService.PromoteExperiment": {"name": "exp-1"},
}

# Rules on a whole message, by rule id: the fields that break it, set on the RPC's valid request.
MESSAGE_RULE_EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "rating.required_with_rate": (
        "recsys.v1.EventService.PostEvent",
        {"type": event_service_pb2.EVENT_TYPE_RATE},
    ),
    "rating.only_with_rate": ("recsys.v1.EventService.PostEvent", {"rating": 3.0}),
}


@dataclass(frozen=True)
class Case:
    """A request of `method` that breaks `rule` of one field and nothing else."""

    method: descriptor.MethodDescriptor
    field: str  # the field the answer must name: "limit", "genres[0]", "events"
    rule: str  # "int32.gte", "string.no_nul", "repeated.max_items", a message rule's id
    request: Message

    @property
    def id(self) -> str:
        return f"{self.method.name}:{self.field}:{self.rule}"


def _nonmatching(pattern: str) -> str:
    for candidate in (" ", "!", "", "a b", "é"):
        if not re.search(pattern, candidate):
            return candidate
    raise ValueError(f"no breaking value known for pattern {pattern!r}: add one")


# What breaks a rule, by the rule's name in its kind (Int64Rules.gt, StringRules.max_len, ...):
# a function of the rule's value returning the breaking field value.
_BREAKERS: dict[str, Callable[[Any], Any]] = {
    "gt": lambda v: v,
    # A float bound: below it by half (0.5 -> 0.25: a rating), or by 1 when it is not positive.
    "gte": lambda v: v - 1 if isinstance(v, int) or v <= 0 else v / 2,
    "lt": lambda v: v,
    "lte": lambda v: v + 1,
    "max_len": lambda v: "a" * (v + 1),
    "min_len": lambda v: "a" * (v - 1),
    "pattern": _nonmatching,
    "no_nul": lambda v: "a\x00b",
    "not_blank": lambda v: " ",
    "not_in": lambda v: v[0],
}


def _break_scalar(kind: str, name: str, value: Any, field: descriptor.FieldDescriptor) -> Any:
    if name == "defined_only":  # the first number the enum does not define
        return max(v.number for v in field.enum_type.values) + 1
    if name not in _BREAKERS:
        raise NotImplementedError(f"tests/proto_rules.py cannot break {kind}.{name} yet: add it to _BREAKERS")
    return _BREAKERS[name](value)


def _scalar_rules(rules: validate_pb2.FieldRules) -> tuple[str, list[tuple[str, Any]]]:
    """The kind of a FieldRules (int64, string, ...) and its rules, predefined ones included."""
    kind = rules.WhichOneof("type")
    if kind is None:
        return "", []
    return kind, [(fd.name, value) for fd, value in getattr(rules, kind).ListFields()]


def _field_cases(method: descriptor.MethodDescriptor, field: descriptor.FieldDescriptor) -> Iterator[Case]:
    rules: validate_pb2.FieldRules = field.GetOptions().Extensions[validate_pb2.field]
    if rules.ignore == validate_pb2.IGNORE_ALWAYS:
        return
    if rules.cel or rules.cel_expression:
        raise NotImplementedError(f"{field.full_name}: field CEL rules need a breaking example here")
    base = request_of(method)

    def case(rule: str, value: Any, path: str = field.name) -> Case:
        request = request_of(method)
        if field.is_repeated:
            request.ClearField(field.name)
            getattr(request, field.name).extend(value)
        elif field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
            getattr(request, field.name).CopyFrom(value)
        else:
            setattr(request, field.name, value)
        return Case(method, path, rule, request)

    if rules.required:
        request = request_of(method)
        request.ClearField(field.name)
        yield Case(method, field.name, "required", request)
    kind, scalar = _scalar_rules(rules)
    if kind == "repeated":
        items = rules.repeated.items
        for name, value in scalar:
            if name == "min_items":
                yield case("repeated.min_items", [])
            elif name == "max_items":
                one = list(getattr(base, field.name)) or [_valid_item(field)]
                yield case("repeated.max_items", one[:1] * (value + 1))
            elif name == "unique":
                yield case("repeated.unique", [_valid_item(field)] * 2)
            elif name != "items":
                raise NotImplementedError(f"tests/proto_rules.py cannot break repeated.{name} yet")
        if rules.repeated.HasField("items") and items.ignore != validate_pb2.IGNORE_ALWAYS:
            item_kind, item_rules = _scalar_rules(items)
            for name, value in item_rules:
                bad = _break_scalar(item_kind, name, value, field)
                yield case(f"{item_kind}.{name}", [bad], f"{field.name}[0]")
        return
    if kind == "field_mask":
        for name, value in scalar:
            if name != "in":
                raise NotImplementedError(f"tests/proto_rules.py cannot break field_mask.{name} yet")
            yield case("field_mask.in", field_mask_pb2.FieldMask(paths=["not_" + "_".join(value)]))
        return
    for name, value in scalar:
        yield case(f"{kind}.{name}", _break_scalar(kind, name, value, field))


def _valid_item(field: descriptor.FieldDescriptor) -> Any:
    if field.type == descriptor.FieldDescriptor.TYPE_STRING:
        return "a"
    if field.type in (descriptor.FieldDescriptor.TYPE_INT64, descriptor.FieldDescriptor.TYPE_INT32):
        return 1
    raise NotImplementedError(f"{field.full_name}: give VALID a list to repeat")


def _message_cases(method: descriptor.MethodDescriptor) -> Iterator[Case]:
    rules = method.input_type.GetOptions().Extensions[validate_pb2.message]
    if rules.cel_expression or rules.oneof:
        raise NotImplementedError(f"{method.input_type.full_name}: teach tests/proto_rules.py these rules")
    for rule in rules.cel:
        if rule.id not in MESSAGE_RULE_EXAMPLES:
            raise NotImplementedError(f"message rule {rule.id!r}: add an example to MESSAGE_RULE_EXAMPLES")
        name, fields = MESSAGE_RULE_EXAMPLES[rule.id]
        if name == method.full_name:
            request = request_of(method, **fields)
            yield Case(method, rule.id.partition(".")[0], rule.id, request)


def request_of(method: descriptor.MethodDescriptor, **fields: Any) -> Message:
    """The valid request of `method` (VALID), with `fields` set on it."""
    return message_factory.GetMessageClass(method.input_type)(**{**VALID[method.full_name], **fields})


def methods() -> Iterator[descriptor.MethodDescriptor]:
    for service in API_SERVICES:
        yield from service.methods


def annotated_fields(message: descriptor.Descriptor) -> list[descriptor.FieldDescriptor]:
    return [f for f in message.fields if f.GetOptions().HasExtension(validate_pb2.field)]


def cases() -> list[Case]:
    out: list[Case] = []
    for method in methods():
        for field in annotated_fields(method.input_type):
            out.extend(_field_cases(method, field))
        out.extend(_message_cases(method))
    return out


CASES = cases()
