"""ProfileService against the real stack, directly over gRPC and through Envoy."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import grpc
import psycopg
import pytest

from recsys.tables.user_items import RETURNING, record_new_events
from recsys.v1 import profile_service_pb2 as pb
from recsys.v1 import profile_service_pb2_grpc as pb_grpc
from tests.tokens import auth_headers, authed_channel

pytestmark = pytest.mark.stack

U_ACTIVE, U_VECTOR, U_NOBODY = 900_000_201, 900_000_202, 900_000_299
MOVIE = 900_000_201


@pytest.fixture(scope="module")
def seeded(stack):
    with psycopg.connect(stack.database_url, autocommit=True) as db:

        def clean() -> None:
            db.execute("DELETE FROM rt_user_interactions WHERE user_id IN (%s, %s)", (U_ACTIVE, U_VECTOR))
            db.execute("DELETE FROM user_profiles WHERE user_id IN (%s, %s)", (U_ACTIVE, U_VECTOR))
            db.execute("DELETE FROM user_items WHERE user_id IN (%s, %s)", (U_ACTIVE, U_VECTOR))
            db.execute("DELETE FROM movies WHERE movie_id = %s", (MOVIE,))

        clean()
        db.execute(
            "INSERT INTO movies (movie_id, title, year, genres) VALUES (%s, 'Profile Test', 2001, %s)",
            (MOVIE, ["ProfTestA", "ProfTestB"]),
        )
        for event, rating in (("view", None), ("rate", 4.5), ("like", None)):
            # As the speed layer writes an event: into the window and the user's history.
            db.execute(
                record_new_events(
                    "INSERT INTO rt_user_interactions"
                    " (event_id, user_id, movie_id, event_type, rating, occurred_at)"
                    f" VALUES (%s, %s, %s, %s, %s, now()) {RETURNING}"
                ),
                (uuid.uuid4().hex, U_ACTIVE, MOVIE, event, rating),
            )
        vector = "[" + ",".join(["0.5"] * 64) + "]"
        db.execute(
            "INSERT INTO user_profiles (user_id, preference_vector, model_version, interaction_count)"
            " VALUES (%s, %s::vector, 'test-profile-v1', 9)",
            (U_VECTOR, vector),
        )
        yield
        clean()


@pytest.fixture(scope="module")
def stub(stack):
    with authed_channel(stack.profile_addr) as channel:
        yield pb_grpc.ProfileServiceStub(channel)


def test_create_user_then_profile(stub):
    user_id = stub.CreateUser(pb.CreateUserRequest(display_name="Test"), timeout=10).user_id
    assert user_id >= 10_000_000
    profile = stub.GetProfile(pb.GetProfileRequest(user_id=user_id), timeout=10).profile
    assert profile.user_id == user_id and not profile.has_preference_vector
    assert profile.interaction_count == 0


def test_user_with_interactions_but_no_profile_row(stub, seeded):
    profile = stub.GetProfile(pb.GetProfileRequest(user_id=U_ACTIVE, recent_limit=2), timeout=10).profile
    assert profile.interaction_count == 3 and profile.rating_count == 1
    assert not profile.has_preference_vector
    assert list(profile.top_genres) == ["ProfTestA", "ProfTestB"]
    assert len(profile.recent_interactions) == 2
    assert profile.recent_interactions[0].movie.title == "Profile Test"
    assert profile.updated_at.seconds > 0


def test_unknown_user_is_not_found(stub, stack):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetProfile(pb.GetProfileRequest(user_id=U_NOBODY), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    try:
        urllib.request.urlopen(
            urllib.request.Request(f"{stack.envoy_url}/v1/users/{U_NOBODY}/profile", headers=auth_headers()),
            timeout=10,
        )
        raise AssertionError("expected 404")
    except urllib.error.HTTPError as e:
        assert e.code == 404


def test_preference_vector(stub, seeded):
    resp = stub.GetPreferenceVector(pb.GetPreferenceVectorRequest(user_id=U_VECTOR), timeout=10)
    assert len(resp.vector) == 64 and resp.vector[0] == pytest.approx(0.5)
    assert resp.model_version == "test-profile-v1" and resp.updated_at.seconds > 0
    empty = stub.GetPreferenceVector(pb.GetPreferenceVectorRequest(user_id=U_ACTIVE), timeout=10)
    assert len(empty.vector) == 0


def test_profile_through_envoy(stack, seeded):
    url = f"{stack.envoy_url}/v1/users/{U_VECTOR}/profile"
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth_headers()), timeout=10) as resp:
        profile = json.loads(resp.read())["profile"]
    assert profile["hasPreferenceVector"] is True and profile["modelVersion"] == "test-profile-v1"
    assert profile["interactionCount"] == "9"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GetProfileRequest(user_id=0), "user_id"),
        (pb.GetProfileRequest(user_id=1, recent_limit=101), "recent_limit"),
        (pb.GetProfileRequest(user_id=1, recent_limit=-1), "recent_limit"),
    ],
)
def test_invalid_profile_requests(stub, request_, field):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetProfile(request_, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field + ":")
