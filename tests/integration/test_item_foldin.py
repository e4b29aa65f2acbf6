"""Item cold start, second step: the stream solves a new movie's embedding from its first users.

A movie the live model did not train gets its embedding re-solved by the speed layer
(batch.streaming.items) once users with a vector interact with it, within a micro-batch or two,
and from then on it reaches the realtime lists of users like them.

How many users it takes is ALS's own answer: the item step weighs the fans' preference against
every other user's implicit zero, so a movie with a few fans scores like a trained movie with
a few interactions, far below the popular ones. On the demo model a movie liked by 100 users of
one taste reaches the top 50 of a newcomer with that taste (bench/coldstart.md has the curve).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg
import pytest

from batch.streaming.items import MIN_USERS
from stack.client import http, new_user_id, recommendations, wait_for

pytestmark = pytest.mark.stack

FANS = 100


def _create_movie(db: psycopg.Connection[Any], genres: list[str]) -> int:
    row = db.execute(
        "INSERT INTO movies (movie_id, title, year, genres) "
        "VALUES ((SELECT max(movie_id) + 1 FROM movies), 'Item fold-in test', 2026, %s) RETURNING movie_id",
        (genres,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _embedding(db: psycopg.Connection[Any], movie_id: int) -> np.ndarray | None:
    row = db.execute("SELECT embedding FROM movies WHERE movie_id = %s", (movie_id,)).fetchone()
    return None if row is None or row[0] is None else np.asarray(row[0])


def _stored(db: psycopg.Connection[Any], movie_id: int) -> int:
    row = db.execute("SELECT count(*) FROM user_items WHERE movie_id = %s", (movie_id,)).fetchone()
    return int(row[0]) if row else 0


def _rate(stack: Any, user: int, movies: list[int]) -> None:
    events = [{"movieId": str(m), "type": "EVENT_TYPE_RATE", "rating": 5} for m in movies]
    status, body = http("POST", f"{stack.envoy_url}/v1/events:batch", {"userId": str(user), "events": events})
    assert status == 200 and not body.get("rejected"), body


def test_a_new_movie_is_embedded_from_its_first_users_and_reaches_users_like_them(
    stack: Any, db: psycopg.Connection[Any], genre_movies: dict[str, list[int]], trigger_seconds: float
) -> None:
    genre = min(genre_movies, key=lambda g: len(genre_movies[g]))
    taste = genre_movies[genre][:5]
    movie = _create_movie(db, [genre])
    try:
        before = _embedding(db, movie)
        assert FANS >= MIN_USERS
        fans = [new_user_id() for _ in range(FANS)]
        started = time.monotonic()
        for user in fans:
            _rate(stack, user, [*taste, movie])
        budget = 2 * trigger_seconds + 10  # two triggers and the batches' own work on a busy box
        changed = wait_for(
            lambda: (e := _embedding(db, movie)) is not None
            and (before is None or not np.allclose(e, before))
            and e,
            budget,
            interval=0.2,
        )
        elapsed = time.monotonic() - started
        assert changed is not None and changed is not False, f"embedding unchanged after {elapsed:.1f}s"
        assert elapsed <= budget

        # Every fan's events are in (the last batch may still be running): the final embedding.
        wait_for(lambda: _stored(db, movie) == FANS, budget, interval=0.2)
        time.sleep(trigger_seconds)  # the item step runs after the users' writes of that batch

        # A user with the same taste who has never seen the movie: it is in their realtime list.
        newcomer = new_user_id()
        _rate(stack, newcomer, taste)
        recs = recommendations(stack.envoy_url, newcomer, limit=50)
        assert recs["items"][0]["tier"] == "TIER_REALTIME", recs["items"][0]["tier"]
        ids = [int(i["movie"]["movieId"]) for i in recs["items"]]
        assert movie in ids, f"the new movie is not in the top 50 of a user like its fans: {ids}"
    finally:
        db.execute("DELETE FROM user_items WHERE movie_id = %s", (movie,))
        db.execute("DELETE FROM rt_user_interactions WHERE movie_id = %s", (movie,))
        db.execute("DELETE FROM movies WHERE movie_id = %s", (movie,))
