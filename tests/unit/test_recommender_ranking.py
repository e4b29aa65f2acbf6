"""Pure logic of the serving cascade: filters, reasons, cached values, page tokens."""

from __future__ import annotations

import numpy as np
import pytest

from recommender_svc.ranking import (
    BadPageToken,
    CachedList,
    Candidate,
    apply_filters,
    decode_page_token,
    encode_page_token,
    explain,
    taste_genres,
    taste_reason,
    title_patterns,
)
from recommender_svc.store import MAX_EF_SEARCH, MIN_EF_SEARCH, ef_search_for


def cand(movie_id: int, genres: tuple[str, ...] = ("Drama",), score: float = 1.0) -> Candidate:
    return Candidate(movie_id, score, f"Movie {movie_id}", 2000, genres, 10)


def test_filters_exclude_ids_and_keep_any_requested_genre():
    items = [cand(1, ("Drama",)), cand(2, ("Comedy", "Drama")), cand(3, ("Horror",)), cand(4, ("Comedy",))]
    assert [c.movie_id for c in apply_filters(items, frozenset({2}), frozenset())] == [1, 3, 4]
    kept = apply_filters(items, frozenset({4}), frozenset({"Comedy", "Horror"}))
    assert [c.movie_id for c in kept] == [2, 3]


def test_filters_keep_rank_order():
    items = [cand(i) for i in (5, 3, 9, 1)]
    assert [c.movie_id for c in apply_filters(items, frozenset(), frozenset())] == [5, 3, 9, 1]


def test_taste_genres_most_first_ties_by_name():
    lists = [("Drama", "Comedy"), ("Drama",), ("Action",), ("Comedy",)]
    assert taste_genres(lists, top=2) == ["Comedy", "Drama"]
    assert taste_genres([("Drama",), ("Drama",), ("Comedy",)]) == ["Drama", "Comedy"]
    assert taste_genres([]) == []


def test_taste_reason_prefers_shared_genres():
    assert taste_reason(("Comedy", "Romance", "Drama"), ["Drama", "Action"]) == "Matches your taste (Drama)"
    assert taste_reason(("Comedy", "Romance", "Drama"), []) == "Matches your taste (Comedy, Romance)"
    assert taste_reason((), []) == "Matches your taste"


def test_explain_names_the_closest_liked_movie():
    items = [cand(1, ("Sci-Fi",)), cand(2, ("Comedy",)), cand(3, ("Drama",))]
    embs = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, -1.0])]
    liked = [("Alien", np.array([0.9, 0.1])), ("Airplane!", np.array([0.0, 2.0]))]
    out = explain(items, embs, liked, ["Drama"])
    assert [c.reason for c in out] == [
        "Because you liked Alien",
        "Because you liked Airplane!",
        "Matches your taste (Drama)",  # no liked movie has a positive inner product
    ]
    assert [c.movie_id for c in out] == [1, 2, 3]


def test_explain_without_likes_or_embeddings_uses_genres():
    items = [cand(1, ("Comedy",)), cand(2, ("Drama",))]
    assert [c.reason for c in explain(items, [None, None], [("X", np.ones(2))], [])] == [
        "Matches your taste (Comedy)",
        "Matches your taste (Drama)",
    ]
    assert explain(items, [np.ones(2), None], [], ["Drama"])[1].reason == "Matches your taste (Drama)"


def test_cached_list_round_trip():
    value = CachedList(
        "als-7",
        1700000000.5,
        False,
        [
            Candidate(7, 0.123456789, "Heat", 1995, ("Action", "Crime"), 42, "Popular now"),
        ],
    )
    back = CachedList.decode(value.encode())
    assert back is not None
    assert back.model_version == "als-7" and back.profile_updated_at == 1700000000.5
    assert back.exhaustive is False
    assert back.items == [Candidate(7, 0.123457, "Heat", 1995, ("Action", "Crime"), 42, "Popular now")]


@pytest.mark.parametrize("raw", [b"", b"not json", b"{}", b'{"m":"x","u":0,"x":false,"i":[[1]]}'])
def test_cached_list_unreadable_is_a_miss(raw):
    assert CachedList.decode(raw) is None


def test_page_token_round_trip_and_binding_to_the_query():
    token = encode_page_token(1234, 56, "star wars", "Sci-Fi")
    assert decode_page_token(token, "star wars", "Sci-Fi") == (1234, 56)
    with pytest.raises(BadPageToken, match="different query"):
        decode_page_token(token, "star trek", "Sci-Fi")
    with pytest.raises(BadPageToken, match="different query"):
        decode_page_token(token, "star wars", "")


@pytest.mark.parametrize("token", ["garbage", "!!!", "e30", "WzEsMl0", "WyJhIiwxLCJ4Il0"])
def test_malformed_page_tokens_are_rejected(token):
    with pytest.raises(BadPageToken):
        decode_page_token(token, "", "")


def test_title_patterns_escape_and_order_longest_first():
    assert title_patterns("") == []
    assert title_patterns("  Star  WARS star ") == ["%star%", "%wars%"]
    assert title_patterns("the matrix") == ["%matrix%", "%the%"]
    assert title_patterns("Star Wars") == ["%star%", "%wars%"]
    assert title_patterns("Amélie 100%") == ["%amélie%", "%100\\%%"]
    assert title_patterns("a_b") == ["%a\\_b%"]


def test_ef_search_is_at_least_the_rows_asked_for():
    assert ef_search_for(1) == MIN_EF_SEARCH
    for k in (10, 50, 100, 400):
        assert ef_search_for(k) >= k
    assert ef_search_for(5000) == MAX_EF_SEARCH
