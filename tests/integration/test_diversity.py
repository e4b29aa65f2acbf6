"""Issue #18, diversity: the `diversity` weight changes the answer through the gateway, the cache
keeps serving the plain ranking, and a bad weight is refused naming the field.

A user who likes one genre only gets a list dominated by it; asked with diversity 0.8 the list
mixes genres (higher intra-list diversity, recommender_svc.diversity), keeps the same first
movie, and the plain list asked again afterwards is the plain one (no weight leaks across
requests through the cached entry).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import grpc
import pytest
import redis

from recommender_svc.diversity import intra_list_diversity
from recsys.cache import recommendations_key
from recsys.pending import pending_key
from recsys.v1 import recommender_service_pb2, recommender_service_pb2_grpc
from stack.client import new_user_id, wait_for
from tests.tokens import bearer, user_token

pytestmark = pytest.mark.stack


def _get(stack: Any, path: str, token: str) -> tuple[int, Any]:
    req = urllib.request.Request(stack.envoy_url + path, headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _post(stack: Any, path: str, token: str, body: Any) -> None:
    req = urllib.request.Request(
        stack.envoy_url + path,
        data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=15) as resp:
        assert resp.status == 200


def _genres(answer: dict[str, Any]) -> list[frozenset[str]]:
    return [frozenset(i["movie"].get("genres", [])) for i in answer["items"]]


def _ids(answer: dict[str, Any]) -> list[str]:
    return [i["movie"]["movieId"] for i in answer["items"]]


def test_diversity_mixes_the_list_and_the_cache_keeps_the_plain_one(
    stack: Any, genre_movies: dict[str, list[int]]
) -> None:
    user = new_user_id()
    token = user_token(user)
    genre = max(genre_movies, key=lambda g: len(genre_movies[g]))
    likes = [{"movieId": str(m), "type": "EVENT_TYPE_LIKE"} for m in genre_movies[genre][:8]]
    _post(stack, "/v1/events:batch", token, {"userId": str(user), "events": likes})
    # Once the stream has applied the likes, the plain list is computed and cached.
    r = redis.Redis.from_url(stack.redis_url)
    assert wait_for(lambda: r.llen(pending_key(user)) == 0, 60), "the stream never applied the likes"
    status, plain = _get(stack, f"/v1/users/{user}/recommendations?limit=10", token)
    assert status == 200 and plain["tier"] == "TIER_REALTIME", plain
    assert wait_for(lambda: r.exists(recommendations_key(user)), 10), "the list was never cached"

    status, diverse = _get(stack, f"/v1/users/{user}/recommendations?limit=10&diversity=0.8", token)
    assert status == 200 and diverse["tier"] == "TIER_CACHE", diverse  # re-ranked from the cached pool
    assert len(diverse["items"]) == 10
    assert _ids(diverse) != _ids(plain)
    assert _ids(diverse)[0] == _ids(plain)[0]  # the most relevant movie stays first
    assert intra_list_diversity(_genres(diverse)) > intra_list_diversity(_genres(plain))
    assert [i["position"] for i in diverse["items"]] == list(range(10))
    # Weight 0 is the plain ranking, and the plain list is still the plain one afterwards.
    status, zero = _get(stack, f"/v1/users/{user}/recommendations?limit=10&diversity=0", token)
    assert status == 200 and _ids(zero) == _ids(plain), zero
    status, again = _get(stack, f"/v1/users/{user}/recommendations?limit=10", token)
    assert status == 200 and again["tier"] == "TIER_CACHE" and _ids(again) == _ids(plain), again


@pytest.mark.parametrize("bad", ["-0.1", "1.5", "NaN"])
def test_a_bad_weight_is_refused_naming_the_field(stack: Any, bad: str) -> None:
    user = new_user_id()
    status, body = _get(stack, f"/v1/users/{user}/recommendations?diversity={bad}", user_token(user))
    assert status == 400, body
    assert body["message"].startswith("diversity: "), body
    with grpc.insecure_channel(stack.envoy_grpc_addr) as channel:
        stub = recommender_service_pb2_grpc.RecommenderServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.GetRecommendations(
                recommender_service_pb2.GetRecommendationsRequest(user_id=user, diversity=float(bad)),
                metadata=bearer(),
                timeout=10,
            )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("diversity: "), err.value.details()
