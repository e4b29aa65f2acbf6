import grpc
import pytest

from recsys.errors import InvalidArgument
from recsys.v1 import recommender_service_pb2 as pb
from recsys.validation import Checks


def test_all_violations_are_named_together() -> None:
    request = pb.GetRecommendationsRequest(user_id=0, limit=500, exclude_movie_ids=[3, -1])
    check = Checks()
    check.positive("user_id", request.user_id)
    check.optional_range(request, "limit", 1, 100, default=20)
    check.all_positive("exclude_movie_ids", request.exclude_movie_ids)
    with pytest.raises(InvalidArgument) as err:
        check.done()
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in err.value.violations] == ["user_id", "limit", "exclude_movie_ids[1]"]
    assert "limit: must be between 1 and 100, got 500" in err.value.message


def test_absent_optional_gets_default_and_explicit_zero_is_rejected() -> None:
    check = Checks()
    assert check.optional_range(pb.GetRecommendationsRequest(user_id=1), "limit", 1, 100, default=20) == 20
    check.done()
    check.optional_range(pb.GetRecommendationsRequest(user_id=1, limit=0), "limit", 1, 100, default=20)
    with pytest.raises(InvalidArgument, match="limit"):
        check.done()


def test_string_and_list_limits() -> None:
    check = Checks()
    check.max_len("query", "x" * 201, 200)
    check.max_items("genres", ["a"] * 21, 20)
    with pytest.raises(InvalidArgument) as err:
        check.done()
    assert {v.field for v in err.value.violations} == {"query", "genres"}


def test_text_with_a_nul_character_is_refused() -> None:
    """PostgreSQL text cannot hold U+0000: a NUL in a query was a 500 before it was checked."""
    check = Checks()
    check.max_len("query", "a\x00b", 200)
    check.max_len("genre", "Drama", 100)
    with pytest.raises(InvalidArgument) as err:
        check.done()
    assert [(v.field, v.description) for v in err.value.violations] == [
        ("query", "must not contain NUL characters")
    ]
