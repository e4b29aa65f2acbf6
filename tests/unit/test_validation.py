"""recsys.validation: the protos' rules as FieldViolations, and the interceptor that enforces them."""

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from recsys.errors import InvalidArgument
from recsys.v1 import event_service_pb2 as ev
from recsys.v1 import recommender_service_pb2 as pb
from recsys.validation import ValidationInterceptor, check, violations


def test_all_violations_are_named_together_with_the_bad_number() -> None:
    request = pb.GetRecommendationsRequest(user_id=0, limit=500, exclude_movie_ids=[3, -1])
    with pytest.raises(InvalidArgument) as err:
        check(request)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.value.violations] == ["user_id", "limit", "exclude_movie_ids[1]"]
    limit = "limit: must be greater than or equal to 1 and less than or equal to 100, got 500"
    assert limit in err.value.message


def test_an_absent_optional_is_not_checked_and_an_explicit_zero_is() -> None:
    check(pb.GetRecommendationsRequest(user_id=1))
    assert [v.field for v in violations(pb.GetRecommendationsRequest(user_id=1, limit=0))] == ["limit"]


def test_text_with_a_nul_character_is_refused() -> None:
    """PostgreSQL text cannot hold U+0000: a NUL in a query was a 500 before it was checked."""
    found = violations(pb.ListMoviesRequest(query="a\x00b", genre="Drama"))
    assert [(v.field, v.description) for v in found] == [("query", "must not contain NUL characters")]


def test_a_rule_across_fields_names_its_field() -> None:
    found = violations(ev.PostEventRequest(user_id=1, movie_id=2, type=ev.EVENT_TYPE_RATE))
    assert [(v.field, v.description) for v in found] == [("rating", "is required with EVENT_TYPE_RATE")]


def test_the_events_of_a_batch_are_left_to_the_handler() -> None:
    """A bad event must not fail the whole batch: PostEvents answers it on its own."""
    check(ev.PostEventsRequest(user_id=1, events=[ev.PostEventRequest()]))
    assert [v.field for v in violations(ev.PostEventsRequest(user_id=1))] == ["events"]


class _Handler:
    """What grpc.aio's continuation returns for a unary method."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.request_deserializer = pb.GetMovieRequest.FromString
        self.response_serializer = pb.GetMovieResponse.SerializeToString

    async def unary_unary(self, request: Any, context: Any) -> pb.GetMovieResponse:
        self.seen.append(request)
        return pb.GetMovieResponse()


class _Details:
    method = "/recsys.v1.RecommenderService/GetMovie"


async def test_the_interceptor_refuses_before_the_handler_runs() -> None:
    handler = _Handler()

    async def continuation(details: Any) -> Any:
        return handler

    interceptor = ValidationInterceptor()
    wrapped = await interceptor.intercept_service(continuation, _Details())
    assert await interceptor.intercept_service(continuation, _Details()) is wrapped  # built once
    with pytest.raises(InvalidArgument, match=r"^movie_id: must be greater than 0, got 0$"):
        await wrapped.unary_unary(pb.GetMovieRequest(movie_id=0), None)
    assert handler.seen == []
    await wrapped.unary_unary(pb.GetMovieRequest(movie_id=7), None)
    assert handler.seen == [pb.GetMovieRequest(movie_id=7)]


def test_the_violations_travel_as_a_bad_request_in_the_status_details() -> None:
    """What Envoy's transcoder prints as the REST body's `details`, and gRPC clients can unpack."""
    err = InvalidArgument(violations(pb.GetRecommendationsRequest(user_id=0, genres=[" "])))
    [(key, value)] = err.trailing_metadata()
    status = status_pb2.Status.FromString(value)
    assert key == "grpc-status-details-bin"
    assert (status.code, status.message) == (3, err.message)
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("user_id", "must be greater than 0, got 0"),
        ("genres[0]", "must not be empty"),
    ]


def test_a_bad_enum_value_is_answered_with_the_names_a_client_may_send() -> None:
    from recsys.v1 import event_service_pb2 as pb
    from recsys.validation import violations

    for bad in (0, 17):
        (found,) = violations(pb.PostEventRequest(user_id=1, movie_id=1, type=bad))  # type: ignore[arg-type]
        assert found.field == "type"
        assert found.description.startswith("must be one of EVENT_TYPE_VIEW, EVENT_TYPE_CLICK")
        assert "EVENT_TYPE_UNSPECIFIED" not in found.description and found.description.endswith(f"got {bad}")
