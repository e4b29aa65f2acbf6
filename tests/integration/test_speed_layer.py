"""The speed layer end to end: events through Envoy -> Kafka -> Spark -> profiles -> realtime tier."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import psycopg
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from recsys.cache import recommendations_key
from stack.client import (
    new_user_id,
    post_event,
    recommendations,
    wait_for,
)

pytestmark = pytest.mark.stack


def _genre_of(db: psycopg.Connection[Any], movie_ids: list[int]) -> dict[int, list[str]]:
    rows = db.execute("SELECT movie_id, genres FROM movies WHERE movie_id = ANY(%s)", (movie_ids,)).fetchall()
    return {r[0]: list(r[1]) for r in rows}


def test_new_user_is_personalised_within_two_triggers(
    stack: Any, db: psycopg.Connection[Any], genre_movies: dict[str, list[int]], trigger_seconds: float
) -> None:
    genre = min(genre_movies, key=lambda g: len(genre_movies[g]))  # the most distinctive genre
    rated = genre_movies[genre][:5]
    user = new_user_id()
    cache = redis.Redis.from_url(stack.redis_url)
    key = recommendations_key(user)

    before = recommendations(stack.envoy_url, user)
    assert all(item["tier"] != "TIER_REALTIME" for item in before["items"])
    cache.set(key, b"stale entry from before the events")  # the entry the user had

    started = time.monotonic()
    for movie_id in rated:
        status, body = post_event(
            stack.envoy_url, userId=user, movieId=movie_id, type="EVENT_TYPE_RATE", rating=5
        )
        assert status == 200, body
        assert body["eventId"]
    budget = 2 * trigger_seconds + 3  # two triggers plus the batch's own work

    assert wait_for(lambda: not cache.exists(key), budget), "cache entry not invalidated in time"
    recs = wait_for(
        lambda: (r := recommendations(stack.envoy_url, user))["items"][0]["tier"] == "TIER_REALTIME" and r,
        max(0.5, budget - (time.monotonic() - started)),
    )
    elapsed = time.monotonic() - started
    assert recs, f"no realtime recommendations {elapsed:.1f}s after the events"
    assert elapsed <= budget, f"took {elapsed:.1f}s, more than two triggers ({budget:.0f}s)"

    ids = [int(item["movie"]["movieId"]) for item in recs["items"]]
    assert not set(ids) & set(rated), "rated movies must not be recommended again"
    genres = _genre_of(db, ids)
    share = sum(genre in genres.get(m, []) for m in ids) / len(ids)
    total = db.execute("SELECT count(*) FROM movies WHERE embedding IS NOT NULL").fetchone()[0]
    base = len(genre_movies[genre]) / total
    # "Leans to the genre": at least twice as common in the list as in the catalogue.
    assert share >= 2 * base, f"{genre}: {share:.0%} of the list, catalogue share {base:.0%}"

    profile = db.execute(
        "SELECT interaction_count, rating_count, preference_vector IS NOT NULL FROM user_profiles "
        "WHERE user_id = %s",
        (user,),
    ).fetchone()
    assert profile == (5, 5, True)


def test_feedback_on_a_served_item_records_its_position(
    stack: Any, db: psycopg.Connection[Any], genre_movies: dict[str, list[int]], trigger_seconds: float
) -> None:
    user = new_user_id()
    recs = recommendations(stack.envoy_url, user)
    request_id = recs["requestId"]
    third = int(recs["items"][2]["movie"]["movieId"])
    event_id = f"fb-{uuid.uuid4()}"
    status, body = post_event(
        stack.envoy_url,
        eventId=event_id,
        userId=user,
        movieId=third,
        type="EVENT_TYPE_CLICK",
        requestId=request_id,
    )
    assert status == 200, body
    row = wait_for(
        lambda: db.execute(
            "SELECT request_id, position, event_type FROM recommendation_feedback WHERE event_id = %s",
            (event_id,),
        ).fetchone(),
        2 * trigger_seconds + 5,
    )
    assert row == (request_id, 3, "click")  # 1-based position in the served list


BAD_EVENTS = [
    ({"userId": 0}, "user_id"),
    ({"movieId": 0}, "movie_id"),
    ({"movieId": 987_654_321_987}, "movie_id"),
    ({"type": "EVENT_TYPE_UNSPECIFIED"}, "type"),
    ({"type": "EVENT_TYPE_RATE"}, "rating"),
    ({"type": "EVENT_TYPE_RATE", "rating": 5.5}, "rating"),
    ({"rating": 3}, "rating"),
    ({"occurredAt": "2099-01-01T00:00:00Z"}, "occurred_at"),
    ({"eventId": "x" * 65}, "event_id"),
]


def _end_offsets(stack: Any) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap_servers, "group.id": "speed-test-probe"})
    meta = consumer.list_topics(stack.kafka_topic, timeout=10).topics[stack.kafka_topic]
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(stack.kafka_topic, p), timeout=10)[1]
        for p in meta.partitions
    }
    consumer.close()
    return ends


def _records_since(stack: Any, start: dict[int, int]) -> list[dict[str, Any]]:
    end = _end_offsets(stack)
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap_servers,
            "group.id": f"speed-test-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(stack.kafka_topic, p, o) for p, o in start.items()])
    want = sum(end[p] - start[p] for p in start)
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while len(records) < want and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            records.append(json.loads(msg.value()))
    consumer.close()
    return records


def test_each_invalid_field_is_a_400_naming_it_and_never_reaches_kafka(
    stack: Any, genre_movies: dict[str, list[int]]
) -> None:
    movie = next(iter(genre_movies.values()))[0]
    user = new_user_id()
    start = _end_offsets(stack)
    for change, field in BAD_EVENTS:
        event = {"userId": user, "movieId": movie, "type": "EVENT_TYPE_CLICK", **change}
        status, body = post_event(stack.envoy_url, **event)
        assert status == 400, (change, body)
        assert body["message"].startswith(f"{field}:") or f"; {field}:" in body["message"], body
    # One good event as a marker that the probe reads the right range.
    status, body = post_event(stack.envoy_url, userId=user, movieId=movie, type="EVENT_TYPE_VIEW")
    assert status == 200, body
    mine = [r for r in _records_since(stack, start) if r.get("user_id") == user or r.get("user_id") == 0]
    assert [r["event_id"] for r in mine] == [body["eventId"]]
