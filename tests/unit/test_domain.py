"""The domain vocabulary: one table, and the SQL rendered from it says what the Python says."""

from __future__ import annotations

import sqlite3

import pytest

from recsys.domain.events import (
    EVENT_KINDS,
    EVENT_TYPE_NAMES,
    EVENT_TYPE_VALUES,
    EVENT_TYPES,
    FEEDBACK_TYPES,
    event_signal,
    is_liked,
    liked_sql,
)
from recsys.domain.movies import movie_from_row
from recsys.v1 import event_service_pb2 as pb


def test_every_proto_event_type_has_one_kind():
    assert set(EVENT_TYPE_NAMES) == set(pb.EventType.values()) - {pb.EVENT_TYPE_UNSPECIFIED}
    for value, name in EVENT_TYPE_NAMES.items():
        assert pb.EventType.Name(value) == f"EVENT_TYPE_{name.upper()}"
        assert EVENT_TYPE_VALUES[name] == value
    assert len(set(EVENT_TYPES)) == len(EVENT_KINDS)


def test_a_view_is_not_feedback_every_choice_is():
    assert set(FEEDBACK_TYPES) == set(EVENT_TYPES) - {"view"}


@pytest.mark.parametrize(
    ("event", "rating", "liked"),
    [
        ("like", None, True),
        ("watch", None, True),
        ("rate", 4.0, True),
        ("rate", 3.5, True),
        ("rate", 3.0, False),
        ("rate", None, False),
        ("view", None, False),
        ("dislike", None, False),
        ("click", None, False),
    ],
)
def test_is_liked(event, rating, liked):
    assert is_liked(event, rating) is liked


def test_liked_sql_is_is_liked():
    # Plain SQL, so SQLite evaluates it as PostgreSQL does.
    cases = [(k, None) for k in EVENT_TYPES] + [("rate", r / 2) for r in range(1, 11)]
    with sqlite3.connect(":memory:") as db:
        for kind, rating in cases:
            (got,) = db.execute(f"SELECT coalesce({liked_sql('?1', '?2')}, 0)", (kind, rating)).fetchone()
            assert bool(got) is is_liked(kind, rating), (kind, rating)


def test_signals():
    assert event_signal("rate", 5.0) == 5.0
    assert event_signal("rate", None) == 0.0
    assert event_signal("dislike") < 0 < event_signal("view") < event_signal("like")
    assert event_signal("purchase") == 0.0


def test_movie_from_a_row_with_nulls():
    row = {"movie_id": None, "title": None, "year": None, "genres": None, "popularity": None}
    assert movie_from_row(row).title == "" and movie_from_row(row).year == 0
    full = {"movie_id": 1, "title": "Alien", "year": 1979, "genres": ["Horror"], "popularity": 7, "x": 0}
    movie = movie_from_row(full)
    assert (movie.movie_id, movie.title, movie.year, list(movie.genres), movie.popularity) == (
        1,
        "Alien",
        1979,
        ["Horror"],
        7,
    )


def test_rating_range_and_id_length_are_the_protos_rules():
    from recsys.domain.events import MAX_EVENT_ID_LEN, RATING_MAX, RATING_MIN

    assert (RATING_MIN, RATING_MAX, MAX_EVENT_ID_LEN) == (0.5, 5.0, 64)
