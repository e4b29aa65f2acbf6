"""Issue #18, "not interested": a dislike takes the movie out of the very next answer, and for good.

A user with a personalised list dislikes its first movie through the gateway and asks again at
once (no sleep): the movie is gone (the Event service's pending list is read by the
recommender on that request). Once the stream has applied the dislike (the pending list is
trimmed, the user's seen set and vector are updated, the cached list dropped), the movie stays
out, from the realtime tier and from any tier the answer comes from.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import psycopg
import pytest
import redis

from recsys.pending import pending_key
from tests.tokens import user_token

pytestmark = pytest.mark.stack


def _call(stack: Any, method: str, path: str, token: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        stack.envoy_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=15) as resp:
        return json.loads(resp.read())


def _listed(answer: dict[str, Any]) -> list[int]:
    return [int(i["movie"]["movieId"]) for i in answer.get("items", [])]


def test_a_dislike_is_out_of_the_next_answer_and_stays_out(stack: Any) -> None:
    user = 6_000_000_000 + uuid.uuid4().int % 1_000_000_000
    token = user_token(user)
    with psycopg.connect(stack.database_url) as conn:
        liked = [
            m
            for (m,) in conn.execute(
                "SELECT movie_id FROM movies WHERE embedding IS NOT NULL ORDER BY popularity DESC LIMIT 5"
            )
        ]
    assert len(liked) == 5, "no live model with embedded movies"
    events = [{"movieId": str(m), "type": "EVENT_TYPE_LIKE"} for m in liked]
    _call(stack, "POST", "/v1/events:batch", token, {"userId": str(user), "events": events})
    first = _call(stack, "GET", f"/v1/users/{user}/recommendations?limit=10", token)
    assert first["tier"] == "TIER_REALTIME", first["tier"]
    unwanted = _listed(first)[0]

    dislike = {"userId": str(user), "movieId": str(unwanted), "type": "EVENT_TYPE_DISLIKE"}
    _call(stack, "POST", "/v1/events", token, dislike)
    right_after = _call(stack, "GET", f"/v1/users/{user}/recommendations?limit=10", token)
    assert unwanted not in _listed(right_after), right_after

    # After the stream applied everything (the pending list trimmed), it is still out.
    r = redis.Redis.from_url(stack.redis_url)
    deadline = time.monotonic() + 60
    while r.llen(pending_key(user)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert r.llen(pending_key(user)) == 0, "the stream never applied the events"
    for limit in (10, 50):
        later = _call(stack, "GET", f"/v1/users/{user}/recommendations?limit={limit}", token)
        assert unwanted not in _listed(later), later
