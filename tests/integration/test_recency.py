"""What the user liked last steers the realtime tier (recsys.domain.recency), on the running stack.

The query's lean: two new users rate the same ten movies five stars, five of one genre, then
five of another, in opposite orders. Their fold-in vectors are the same (fold-in sees summed
signals, not order), so at the default weights their lists are the same; with the live model's
`recent_weight` set, each list leans to the genre its user rated last: right after the POST
(pending events, recommender_svc.freshness) and once the stream has stored them
(user_items.last_at, recommender_svc.store).

Co-visitation: with the live model's `sequence_weight` set, a movie the live version lists as
co-visited with the movie the user liked last moves from deep in the candidates to the top,
from stored events and from pending ones alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import combinations
from typing import Any

import numpy as np
import psycopg
import pytest
import redis

from recommender_svc.store import MovieStore
from recsys.cache import recommendations_key
from recsys.pending import pending_key
from stack.client import new_user_id, wait_for
from tests.integration.test_request_freshness import call, post_batch
from tests.tokens import user_token

pytestmark = pytest.mark.stack

LIMIT = 20


def set_weight(db: psycopg.Connection[Any], name: str, weight: float) -> None:
    """One of the live model's weights, then a wait until every replica has re-read the model."""
    db.execute(
        "UPDATE models SET params = params || jsonb_build_object(%s::text, %s::float8) WHERE status = 'live'",
        (name, weight),
    )
    time.sleep(MovieStore.LIVE_MODEL_TTL + 1)


@pytest.fixture
def weight(db: psycopg.Connection[Any]) -> Iterator[float]:
    set_weight(db, "recent_weight", 1.0)
    try:
        yield 1.0
    finally:
        set_weight(db, "recent_weight", 0.0)


@pytest.fixture
def covisits(db: psycopg.Connection[Any]) -> Iterator[Callable[[int, int], None]]:
    """Adds (movie, neighbour) co-visits to the live version, under a sequence weight of 1."""
    row = db.execute("SELECT version FROM models WHERE status = 'live'").fetchone()
    assert row is not None
    added: list[tuple[int, int]] = []

    def add(movie: int, neighbour: int) -> None:
        db.execute("INSERT INTO model_covisits VALUES (%s, %s, %s, 1.0) ON CONFLICT DO NOTHING",
                   (row[0], movie, neighbour))
        added.append((movie, neighbour))

    set_weight(db, "sequence_weight", 1.0)
    try:
        yield add
    finally:
        for movie, neighbour in added:
            db.execute("DELETE FROM model_covisits WHERE model_version = %s AND movie_id = %s"
                       " AND neighbour_id = %s", (row[0], movie, neighbour))
        set_weight(db, "sequence_weight", 0.0)


Picked = tuple[str, list[int]]


def two_genres(db: psycopg.Connection[Any], genre_movies: dict[str, list[int]]) -> tuple[Picked, Picked]:
    """The two genres of 150 movies or more that the live model sets furthest apart (lowest
    cosine of their mean embeddings), each with five of its movies that are not of the other."""
    means = {}
    for genre, movies in genre_movies.items():
        if len(movies) >= 150:
            row = db.execute("SELECT avg(embedding)::real[] FROM movies WHERE movie_id = ANY(%s)",
                             (movies,)).fetchone()
            assert row is not None
            v = np.asarray(row[0], dtype=np.float64)
            means[genre] = v / np.linalg.norm(v)
    first, second = min(combinations(sorted(means), 2), key=lambda p: float(means[p[0]] @ means[p[1]]))
    rows = db.execute("SELECT movie_id, genres FROM movies WHERE movie_id = ANY(%s)",
                      (genre_movies[first] + genre_movies[second],)).fetchall()
    genres = {r[0]: set(r[1]) for r in rows}
    only_first = [m for m in genre_movies[first] if second not in genres[m]][:5]
    only_second = [m for m in genre_movies[second] if first not in genres[m]][:5]
    assert len(only_first) == len(only_second) == 5
    return (first, only_first), (second, only_second)


def rate(stack: Any, user: int, first: list[int], then: list[int]) -> None:
    """Five stars for the movies `first` two hours ago, then for `then` an hour ago."""
    now = datetime.now(UTC)
    for movies, ago in ((first, 2), (then, 1)):
        at = (now - timedelta(hours=ago)).isoformat().replace("+00:00", "Z")
        events = [{"movieId": m, "type": "EVENT_TYPE_RATE", "rating": 5, "occurredAt": at} for m in movies]
        status, body = post_batch(stack, user_token(user), {"userId": user, "events": events})
        assert status == 200 and body["accepted"] == len(movies), body


def ranked(stack: Any, user: int, limit: int = LIMIT) -> list[int]:
    status, body, _ = call(
        "GET", f"{stack.envoy_url}/v1/users/{user}/recommendations?limit={limit}", user_token(user)
    )
    assert status == 200, body
    assert body["items"][0]["tier"] == "TIER_REALTIME", body["items"][0]
    return [int(item["movie"]["movieId"]) for item in body["items"]]


def share(db: psycopg.Connection[Any], ids: list[int], genre: str) -> float:
    """The share of the movies `ids` that are of `genre`."""
    row = db.execute("SELECT count(*) FROM movies WHERE movie_id = ANY(%s) AND %s = ANY(genres)",
                     (ids, genre)).fetchone()
    assert row is not None
    return float(row[0]) / len(ids)


def pair(
    db: psycopg.Connection[Any], stack: Any, genre_movies: dict[str, list[int]]
) -> tuple[int, int, Picked, Picked]:
    """Two new users, the same ten ratings: one rated genre a last, the other genre b."""
    a, b = two_genres(db, genre_movies)
    a_last, b_last = new_user_id(), new_user_id()
    rate(stack, a_last, b[1], a[1])
    rate(stack, b_last, a[1], b[1])
    return a_last, b_last, a, b


def stored(stack: Any, *users: int, trigger_seconds: float) -> None:
    cache = redis.Redis.from_url(stack.redis_url)
    assert wait_for(lambda: all(cache.llen(pending_key(u)) == 0 for u in users), 2 * trigger_seconds + 5)


def test_each_list_leans_to_the_genre_rated_last(
    stack: Any, db: psycopg.Connection[Any], genre_movies: dict[str, list[int]], trigger_seconds: float,
    weight: float,
) -> None:
    a_last, b_last, (a, rated_a), (b, rated_b) = pair(db, stack, genre_movies)
    for when in ("pending", "stored"):
        if when == "stored":
            stored(stack, a_last, b_last, trigger_seconds=trigger_seconds)
        to_a, to_b = ranked(stack, a_last), ranked(stack, b_last)
        assert not set(to_a + to_b) & set(rated_a + rated_b), "a rated movie was recommended"
        assert share(db, to_a, a) > share(db, to_b, a), (when, a, to_a, to_b)
        assert share(db, to_b, b) > share(db, to_a, b), (when, b, to_a, to_b)


def test_at_the_default_weight_the_order_of_the_events_changes_nothing(
    stack: Any, db: psycopg.Connection[Any], genre_movies: dict[str, list[int]], trigger_seconds: float,
) -> None:
    a_last, b_last, _, _ = pair(db, stack, genre_movies)
    stored(stack, a_last, b_last, trigger_seconds=trigger_seconds)
    # The same summed signals fold in to the same vector, up to the order of a float sum.
    a_list, b_list = ranked(stack, a_last), ranked(stack, b_last)
    assert len(set(a_list) & set(b_list)) >= LIMIT - 2, (a_list, b_list)


def _deep_list(
    stack: Any, db: psycopg.Connection[Any], genre_movies: dict[str, list[int]], trigger_seconds: float
) -> tuple[int, list[int], list[int], list[int]]:
    """A new user with five stored ratings of one genre, those movies, five movies of another
    genre, and the user's top 50 before anything is co-visited: the model's own order."""
    (_, rated), (_, other) = two_genres(db, genre_movies)
    user = new_user_id()
    rate(stack, user, rated[:2], rated[2:])
    stored(stack, user, trigger_seconds=trigger_seconds)
    return user, rated, other, ranked(stack, user, 50)


def test_a_movie_co_visited_with_the_last_liked_rises_to_the_top(
    stack: Any, db: psycopg.Connection[Any], genre_movies: dict[str, list[int]], trigger_seconds: float,
    covisits: Callable[[int, int], None],
) -> None:
    user, rated, _, deep = _deep_list(stack, db, genre_movies, trigger_seconds)
    covisits(rated[-1], deep[40])  # one of the three movies rated last (at one time: all latest)
    redis.Redis.from_url(stack.redis_url).delete(recommendations_key(user))
    assert ranked(stack, user, 10)[0] == deep[40]


def test_a_pending_like_re_ranks_the_next_answer(
    stack: Any, db: psycopg.Connection[Any], genre_movies: dict[str, list[int]], trigger_seconds: float,
    covisits: Callable[[int, int], None],
) -> None:
    user, _, other, deep = _deep_list(stack, db, genre_movies, trigger_seconds)
    covisits(other[0], deep[30])
    status, body = post_batch(stack, user_token(user), {"userId": user, "events": [
        {"movieId": other[0], "type": "EVENT_TYPE_LIKE"}]})
    assert status == 200 and body["accepted"] == 1, body
    assert ranked(stack, user, 10)[0] == deep[30]  # at once: before the stream stores the like
