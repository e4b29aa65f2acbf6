"""Every validation rule written in the protos is enforced by the running services, over gRPC and
over REST through Envoy, and the answer names the field: in the message ("limit: must be ...")
and in the google.rpc.BadRequest of the status details.

The requests come from tests/proto_rules.py, which reads the rules from the descriptors and
breaks each one in an otherwise valid request (tests/unit/test_proto_rules.py checks those are
valid), so a rule added to a proto is tested here without a line changed. Each call is refused,
so nothing changes. The tests' service token may act for any user: the rules, not the caller's
rights, decide the answer; an admin or analyst method gets a token of its audience.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import grpc
import pytest
from google.api import annotations_pb2
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

from recsys.auth.policy import audience_of
from recsys.v1 import access_pb2, event_service_pb2, event_service_pb2_grpc
from tests.proto_rules import CASES, Case
from tests.tokens import auth_headers, bearer, caller_token

pytestmark = pytest.mark.stack


def named(message: str, field: str) -> bool:
    """Whether an error message ("a: ...; b: ...") names `field` as one of its bad fields."""
    return any(part.startswith(f"{field}: ") for part in message.split("; "))


def bad_request_fields(status: status_pb2.Status) -> list[str]:
    """The fields of the google.rpc.BadRequest in a status's details."""
    details = [d for d in status.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)]
    assert len(details) == 1, status
    bad_request = error_details_pb2.BadRequest()
    details[0].Unpack(bad_request)
    return [v.field for v in bad_request.field_violations]


def grpc_path(case: Case) -> str:
    return f"/{case.method.containing_service.full_name}/{case.method.name}"


def grpc_address(stack, case: Case) -> str:
    """Envoy for the public API; the service's own port for the internal methods Envoy never routes."""
    if audience_of(grpc_path(case)) != access_pb2.AUDIENCE_INTERNAL:
        return stack.envoy_grpc_addr
    return {
        "RecommenderService": stack.recommender_addr,
        "EventService": stack.event_addr,
        "ProfileService": stack.profile_addr,
        "CatalogueService": stack.recommender_addr,
    }[case.method.containing_service.name]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_grpc_refuses_the_broken_rule_naming_the_field(stack, case: Case) -> None:
    with grpc.insecure_channel(grpc_address(stack, case)) as channel:
        call = channel.unary_unary(
            grpc_path(case),
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.RpcError) as err:
            call(case.request, metadata=bearer(caller_token(grpc_path(case))), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert named(err.value.details(), case.field), err.value.details()
    trailers = dict(err.value.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert case.field in bad_request_fields(status), status


# Every annotated field of a method with a REST route, including the GET whose breaking value is
# 1001 excludeMovieIds: an 18 KB query string, which Envoy also forwards as a header
# (x-envoy-original-path); the services accept 64 KiB of metadata (recsys.grpcserver).
REST_CASES = [c for c in CASES if c.method.GetOptions().HasExtension(annotations_pb2.http)]


def rest_request(stack, case: Case) -> urllib.request.Request:
    """The REST call of `case.request` by its method's google.api.http rule: path variables from
    the request's fields, the rest as the JSON body (POST, body "*") or as query parameters."""
    rule = case.method.GetOptions().Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    fields: dict[str, Any] = json_format.MessageToDict(case.request, preserving_proto_field_name=True)
    template = getattr(rule, verb)
    path = re.sub(r"\{(\w+)\}", lambda m: urllib.parse.quote(str(fields.pop(m[1], 0))), template)
    headers = {**auth_headers(caller_token(grpc_path(case))), "content-type": "application/json"}
    if rule.body == "*":
        return urllib.request.Request(
            f"{stack.envoy_url}{path}", data=json.dumps(fields).encode(), headers=headers, method=verb.upper()
        )
    assert not rule.body, f"{case.method.full_name}: teach rest_request body {rule.body!r}"
    json_names = {f.name: f.json_name for f in case.method.input_type.fields}
    query = urllib.parse.urlencode(
        [(json_names[k], v) for k, vs in fields.items() for v in (vs if isinstance(vs, list) else [vs])],
        quote_via=urllib.parse.quote,  # a space as %20: the transcoder reads "+" as a plus
    )
    return urllib.request.Request(f"{stack.envoy_url}{path}?{query}", headers=headers, method=verb.upper())


@pytest.mark.parametrize("case", REST_CASES, ids=lambda c: c.id)
def test_rest_answers_400_naming_the_field(stack, case: Case) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(rest_request(stack, case), timeout=10)
    body = err.value.read()
    assert err.value.code == 400, body
    assert err.value.headers["content-type"].startswith("application/json"), err.value.headers
    status = json.loads(body)
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0], status
    assert named(status["message"], case.field), status
    assert case.field in bad_request_fields(json_format.ParseDict(status, status_pb2.Status())), status


EVENT_CASES = [c for c in CASES if c.method.full_name == "recsys.v1.EventService.PostEvent"]


@pytest.mark.parametrize("case", EVENT_CASES, ids=lambda c: c.id)
def test_post_events_answers_an_event_that_breaks_a_rule_on_its_own(stack, case: Case) -> None:
    """The same rules hold for each event of a batch, but a bad event gets its own result (code 3,
    the field named) instead of failing the call. The batch holds only the bad event, so nothing
    is produced."""
    batch = event_service_pb2.PostEventsRequest(events=[case.request])
    with grpc.insecure_channel(stack.envoy_grpc_addr) as channel:
        reply = event_service_pb2_grpc.EventServiceStub(channel).PostEvents(
            batch, metadata=bearer(), timeout=10
        )
    assert (reply.accepted, reply.rejected) == (0, 1), reply
    result = reply.results[0]
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], result
    assert case.field in [v.field for v in result.violations], result
    assert named(result.message, case.field), result


def test_every_rule_is_tested_over_rest_but_the_internal_rpc() -> None:
    left_out = {c.id for c in CASES} - {c.id for c in REST_CASES}
    internal = {c.id for c in CASES if c.method.full_name == "recsys.v1.ProfileService.GetPreferenceVector"}
    assert left_out == internal
