"""Day 30, not day 1: after the nightly archive, a user's whole history still defines them.

One user sends a history through Envoy; the history is backdated past the 48 h window and the
real archive job (`python -m batch.archive`) moves it to Parquet; then ONE new event arrives.
Every tier must still leave out the archived movies, the new vector must be the fold-in over the
whole history, and the profile must count the whole history. Each check has a control showing
that the check can fail (the archived movies are what the tier would serve otherwise).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
import redis

from batch.foldin import UserStep, aggregate_signals, gram
from recsys.cache import recommendations_key
from recsys.domain.events import EVENT_KINDS, event_signal, signal_sql
from recsys.tables.user_items import accumulate_sql
from recsys.v1 import event_service_pb2 as pb
from stack.client import (
    http,
    new_user_id,
    post_event,
    recommendations,
    wait_for,
)
from tests.tokens import auth_headers, user_token

pytestmark = [pytest.mark.stack, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable
# Stored name -> the enum's name in the REST API's JSON.
EVENT_TYPES = {k.name: pb.EventType.Name(k.proto) for k in EVENT_KINDS}
TOP_GENRES = 5


@dataclass
class Archived:
    """The user whose history was archived, and what the test sent."""

    user: int
    history: list[tuple[int, str, float | None]]  # (movie_id, event_type, rating), archived
    new: tuple[int, str, float | None]  # the one event after the archive
    cached_before: list[int]  # the list cached before the archive (the new movie is from it)

    @property
    def events(self) -> list[tuple[int, str, float | None]]:
        return [*self.history, self.new]

    @property
    def seen(self) -> set[int]:
        return {m for m, _, _ in self.events}


def _send(stack: Any, user: int, events: list[tuple[int, str, float | None]]) -> None:
    for movie_id, kind, rating in events:
        body: dict[str, Any] = {"userId": user, "movieId": movie_id, "type": EVENT_TYPES[kind]}
        if rating is not None:
            body["rating"] = rating
        status, reply = post_event(stack.envoy_url, **body)
        assert status == 200, reply


def _count(db: psycopg.Connection[Any], sql: str, *args: Any) -> int:
    row = db.execute(sql, args).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _ids(reply: dict[str, Any]) -> list[int]:
    return [int(item["movie"]["movieId"]) for item in reply["items"]]


def _tiers(reply: dict[str, Any]) -> set[str]:
    return {item["tier"] for item in reply["items"]}


def _run_archive(stack: Any) -> str:
    env = {**os.environ, **stack.env}
    proc = subprocess.run(
        [PYTHON, "-m", "batch.archive"], env=env, cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def _archived_rows(stack: Any, user: int) -> pd.DataFrame:
    root = Path(stack.env["ARCHIVE_URI"])
    if not root.is_absolute():
        root = REPO / root
    frames = [pd.read_parquet(p) for p in root.glob("date=*/*.parquet")]
    assert frames, f"no Parquet files under {root}"
    every = pd.concat(frames, ignore_index=True)
    return every[every["user_id"] == user]


@pytest.fixture(scope="module")
def archived(stack: Any, db: psycopg.Connection[Any]) -> Archived:
    trigger = float(stack.env.get("STREAM_TRIGGER_SECONDS", "5"))
    budget = 2 * trigger + 10
    # The history: the most popular embedded movies (what the popular tier serves first), with
    # every event type, repeats on a movie and a low rating.
    popular = [
        r[0]
        for r in db.execute(
            "SELECT movie_id FROM movies WHERE embedding IS NOT NULL ORDER BY popularity DESC, movie_id "
            "LIMIT 14"
        ).fetchall()
    ]
    assert len(popular) == 14, "no live model with embedded movies (make up trains the first one)"
    kinds: list[tuple[str, float | None]] = [
        ("rate", 5.0), ("like", None), ("watch", None), ("rate", 4.5), ("click", None),
        ("view", None), ("rate", 4.0), ("like", None), ("watch", None), ("rate", 2.0),
        ("dislike", None), ("click", None), ("rate", 5.0), ("view", None),
    ]  # fmt: skip
    history = [(m, k, r) for m, (k, r) in zip(popular, kinds, strict=True)]
    history += [(popular[0], "watch", None), (popular[1], "rate", 5.0), (popular[4], "like", None)]

    user = new_user_id()
    _send(stack, user, history)
    assert wait_for(
        lambda: (
            _count(db, "SELECT count(*) FROM rt_user_interactions WHERE user_id = %s", user) == len(history)
            and _count(
                db,
                "SELECT count(*) FROM user_profiles WHERE user_id = %s AND preference_vector IS NOT NULL",
                user,
            )
            == 1
        ),
        budget,
    ), "the history did not reach the speed layer"
    cache = redis.Redis.from_url(stack.redis_url)
    key = recommendations_key(user)
    cache.delete(key)
    first = recommendations(stack.envoy_url, user, limit=20)
    assert first["items"][0]["tier"] == "TIER_REALTIME", first
    assert wait_for(lambda: cache.exists(key), 5), "the realtime list was not cached"
    cached_before = _ids(recommendations(stack.envoy_url, user, limit=20))

    # Day 3: the history is older than the window; the nightly archive job moves it to Parquet.
    db.execute(
        "UPDATE rt_user_interactions SET occurred_at = occurred_at - interval '5 days' WHERE user_id = %s",
        (user,),
    )
    _run_archive(stack)
    assert _count(db, "SELECT count(*) FROM rt_user_interactions WHERE user_id = %s", user) == 0, (
        "the archive job left the history in PostgreSQL"
    )
    assert len(_archived_rows(stack, user)) == len(history), "the history is not in the Parquet archive"

    # One new event, on a movie of the list the user has cached.
    before = db.execute("SELECT updated_at FROM user_profiles WHERE user_id = %s", (user,)).fetchone()
    new = (cached_before[0], "like", None)
    assert cache.exists(key)
    _send(stack, user, [new])
    assert wait_for(lambda: not cache.exists(key), budget), "the event did not invalidate the cached list"
    assert wait_for(
        lambda: (
            db.execute("SELECT updated_at FROM user_profiles WHERE user_id = %s", (user,)).fetchone()
            != before
        ),
        budget,
    ), "the new event was not folded in"
    cache.close()
    return Archived(user, history, new, cached_before)


def test_signal_sql_is_event_signal(db: psycopg.Connection[Any]) -> None:
    cases = [(k, None) for k in EVENT_TYPES if k != "rate"] + [("rate", r / 2) for r in range(1, 11)]
    cases += [("rate", None), ("unknown", None)]
    for kind, rating in cases:
        row = db.execute(
            f"SELECT {signal_sql('t', 'r')} FROM (SELECT %s::text AS t, %s::real AS r) e", (kind, rating)
        ).fetchone()
        assert row is not None and row[0] == pytest.approx(event_signal(kind, rating)), (kind, rating)


def test_history_is_archived_and_kept(db: psycopg.Connection[Any], archived: Archived) -> None:
    """user_items holds every movie with its summed signal and counts, archived or not."""
    rows = db.execute(
        "SELECT movie_id, signal, events, ratings, dislikes FROM user_items WHERE user_id = %s",
        (archived.user,),
    ).fetchall()
    expected: dict[int, list[float]] = {}
    for movie_id, kind, rating in archived.events:
        acc = expected.setdefault(movie_id, [0.0, 0, 0, 0])
        acc[0] += event_signal(kind, rating)
        acc[1] += 1
        acc[2] += kind == "rate"
        acc[3] += kind == "dislike"
    assert {r[0]: [r[1], r[2], r[3], r[4]] for r in rows} == expected
    # Only the new event is still in the window.
    assert _count(db, "SELECT count(*) FROM rt_user_interactions WHERE user_id = %s", archived.user) == 1


def test_vector_is_the_fold_in_over_the_whole_history(
    db: psycopg.Connection[Any], archived: Archived
) -> None:
    params = db.execute("SELECT params FROM models WHERE status = 'live'").fetchone()
    assert params is not None
    step = UserStep.of(params[0])
    rows = db.execute("SELECT movie_id, embedding FROM movies WHERE embedding IS NOT NULL").fetchall()
    index = {r[0]: i for i, r in enumerate(rows)}
    factors = np.array([np.asarray(r[1].to_numpy(), dtype=np.float64) for r in rows])
    g = gram(factors)

    def folded(events: list[tuple[int, str, float | None]]) -> np.ndarray:
        items, signals = aggregate_signals(
            [m for m, _, _ in events], [event_signal(k, r) for _, k, r in events]
        )
        return step.solve(factors[[index[int(i)] for i in items]], signals, g, len(factors))

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    row = db.execute(
        "SELECT preference_vector, model_version FROM user_profiles WHERE user_id = %s", (archived.user,)
    ).fetchone()
    assert row is not None and row[0] is not None
    vector = np.asarray(row[0].to_numpy(), dtype=np.float64)
    whole = folded(archived.events)
    assert cosine(vector, whole) >= 0.999
    # Control: the window alone (the one new event) gives another vector.
    assert cosine(folded([archived.new]), whole) < 0.99


def test_profile_counts_the_whole_history(
    stack: Any, db: psycopg.Connection[Any], archived: Archived
) -> None:
    status, body = http("GET", f"{stack.envoy_url}/v1/users/{archived.user}/profile")
    assert status == 200, body
    profile = body["profile"]
    events = archived.events
    assert int(profile["interactionCount"]) == len(events)
    assert int(profile["ratingCount"]) == sum(k == "rate" for _, k, _ in events)
    genres = dict(
        db.execute(
            "SELECT movie_id, genres FROM movies WHERE movie_id = ANY(%s)", (sorted(archived.seen),)
        ).fetchall()
    )
    counts = Counter(g for m, k, _ in events if k != "dislike" for g in genres[m])
    expected = [g for g, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_GENRES]]
    assert profile.get("topGenres", []) == expected


def test_realtime_and_cache_leave_out_the_whole_history(stack: Any, archived: Archived) -> None:
    assert set(archived.cached_before) - {archived.new[0]}, "the cached list was only the new movie"
    realtime = recommendations(stack.envoy_url, archived.user, limit=50)
    assert realtime["tier"] == "TIER_REALTIME", realtime["tier"]
    assert not set(_ids(realtime)) & archived.seen
    cache = redis.Redis.from_url(stack.redis_url)
    assert wait_for(lambda: cache.exists(recommendations_key(archived.user)), 5)
    cache.close()
    cached = recommendations(stack.envoy_url, archived.user, limit=50)
    assert cached["tier"] == "TIER_CACHE"
    assert not set(_ids(cached)) & archived.seen


def test_batch_and_popular_leave_out_the_whole_history(
    stack: Any, db: psycopg.Connection[Any], archived: Archived
) -> None:
    user = archived.user
    live = db.execute("SELECT version FROM models WHERE status = 'live'").fetchone()
    assert live is not None
    unseen = [
        r[0]
        for r in db.execute(
            "SELECT movie_id FROM movies WHERE embedding IS NOT NULL AND NOT movie_id = ANY(%s) "
            "ORDER BY movie_id LIMIT 10",
            (sorted(archived.seen),),
        ).fetchall()
    ]
    # A batch list (trained before the history was archived) that starts with the seen movies.
    listed = [*sorted(archived.seen), *unseen]
    cache = redis.Redis.from_url(stack.redis_url)
    try:
        with db.transaction():
            db.execute(
                "DELETE FROM batch_recommendations WHERE model_version = %s AND user_id = %s", (live[0], user)
            )
            for rank, movie_id in enumerate(listed, 1):
                db.execute(
                    "INSERT INTO batch_recommendations (model_version, user_id, rank, movie_id, score) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (live[0], user, rank, movie_id, 1.0 - rank / 100),
                )
            # No usable vector: the cascade falls to the batch tier.
            db.execute("UPDATE user_profiles SET preference_vector = NULL WHERE user_id = %s", (user,))
        cache.delete(recommendations_key(user))
        batch = recommendations(stack.envoy_url, user, limit=len(unseen))
        assert batch["tier"] == "TIER_BATCH", batch["tier"]
        assert _ids(batch) == unseen

        db.execute(
            "DELETE FROM batch_recommendations WHERE model_version = %s AND user_id = %s", (live[0], user)
        )
        cache.delete(recommendations_key(user))
        popular = recommendations(stack.envoy_url, user, limit=30)
        assert popular["tier"] == "TIER_POPULAR" and _tiers(popular) == {"TIER_POPULAR"}
        assert not set(_ids(popular)) & archived.seen
        # Control: a stranger's popular list starts with the user's history.
        stranger = recommendations(stack.envoy_url, new_user_id(), limit=30)
        assert set(_ids(stranger)) & archived.seen
    finally:
        db.execute(
            "DELETE FROM batch_recommendations WHERE model_version = %s AND user_id = %s", (live[0], user)
        )
        cache.delete(recommendations_key(user))
        cache.close()


def test_similar_movies_for_the_user_leave_out_the_whole_history(stack: Any, archived: Archived) -> None:
    def similar(movie: int, suffix: str = "") -> dict[str, Any]:
        status, body = http("GET", f"{stack.envoy_url}/v1/movies/{movie}/similar?limit=100{suffix}")
        assert status == 200, body
        return dict(body)

    # Control: a movie of the history whose neighbours, for anyone, include others of it.
    movie = next((m for m in sorted(archived.seen) if set(_ids(similar(m))) & (archived.seen - {m})), None)
    assert movie is not None, "no movie of the history has another one among its 100 neighbours"
    mine = similar(movie, f"&userId={archived.user}")
    assert len(mine["items"]) >= 50 and not set(_ids(mine)) & archived.seen
    # What the answer leaves out tells the history: only the user (or a service) may ask.
    url = f"{stack.envoy_url}/v1/movies/{movie}/similar?limit=10&userId={archived.user}"
    for headers, refused in (({}, 401), (auth_headers(user_token(archived.user + 1)), 403)):
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
            raise AssertionError(f"expected {refused}")
        except urllib.error.HTTPError as err:
            assert err.code == refused, (headers, err.code)
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=auth_headers(user_token(archived.user))), timeout=10
    ) as resp:
        assert not {int(i["movie"]["movieId"]) for i in json.loads(resp.read())["items"]} & archived.seen


def test_rebuild_from_the_archive_restores_the_history(
    stack: Any, db: psycopg.Connection[Any], archived: Archived
) -> None:
    """A deployment archived before user_items existed: the rebuild job reads the history back."""
    user = archived.user
    query = "SELECT movie_id, signal, events, ratings, dislikes FROM user_items WHERE user_id = %s ORDER BY 1"
    before = db.execute(query, (user,)).fetchall()
    assert len(before) == len(archived.seen)
    db.execute("DELETE FROM user_items WHERE user_id = %s", (user,))
    db.execute("UPDATE user_profiles SET interaction_count = 1, rating_count = 0 WHERE user_id = %s", (user,))
    proc = subprocess.run(
        [PYTHON, "-m", "batch.history_rebuild"],
        env={**os.environ, **stack.env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert db.execute(query, (user,)).fetchall() == before
    counts = db.execute(
        "SELECT interaction_count, rating_count FROM user_profiles WHERE user_id = %s", (user,)
    ).fetchone()
    assert counts == (len(archived.events), sum(k == "rate" for _, k, _ in archived.events))


def test_seen_backfill_statement_matches_the_sink(db: psycopg.Connection[Any], archived: Archived) -> None:
    """The migration's backfill (accumulate_sql over a table of events) sums as the sink does."""
    with db.transaction():
        db.execute(
            "CREATE TEMP TABLE lifecycle_events (user_id bigint, movie_id bigint, event_type text, "
            "rating real, occurred_at timestamptz) ON COMMIT DROP"
        )
        other = archived.user + 1
        for movie_id, kind, rating in archived.events:
            db.execute(
                "INSERT INTO lifecycle_events VALUES (%s, %s, %s, %s, now())", (other, movie_id, kind, rating)
            )
        db.execute(accumulate_sql("lifecycle_events"))
        mine, theirs = (
            db.execute(
                "SELECT movie_id, signal, events, ratings, dislikes FROM user_items WHERE user_id = %s "
                "ORDER BY movie_id",
                (u,),
            ).fetchall()
            for u in (archived.user, other)
        )
        assert mine == theirs and mine
        db.execute("DELETE FROM user_items WHERE user_id = %s", (other,))


async def test_a_list_read_before_an_invalidation_is_not_cached(stack: Any) -> None:
    """The race a plain DEL leaves open: read, (event committed, key deleted), then SET."""
    from batch.streaming.sink import SpeedLayerSink
    from recommender_svc.cache import RecommendationCache
    from recommender_svc.ranking import CachedList, Candidate
    from recsys.cache import create_client

    user = new_user_id()
    entry = CachedList("m", 0.0, True, [Candidate(1, 1.0, "t", 2000, ("Drama",), 1)])
    client = create_client(stack.redis_url, timeout_seconds=2)
    cache = RecommendationCache(client, 60)
    sink = SpeedLayerSink(stack.database_url, stack.redis_url)
    try:
        read = await cache.generation(user)
        sink.invalidate([user])  # what the sink does after committing the user's event
        await cache.set(user, entry, read)
        assert await cache.get(user) is None, "a list computed before the event was cached after it"
        await cache.set(user, entry, await cache.generation(user))
        cached = await cache.get(user)
        assert cached is not None and cached.movie_ids(1) == [1]
    finally:
        await client.delete(recommendations_key(user))
        await client.aclose()
        sink.close()
