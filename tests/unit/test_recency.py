"""The realtime query's short-term part (recsys.domain.recency), as serving and the benchmark
compute it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from batch.als.evaluate import latest_liked, lean_to_recent, rerank_with_covisits
from batch.als.model import Factors
from batch.als.train import parse_params
from recommender_svc.store import LiveModel
from recsys.domain.popularity import RERANK_DEPTH, depth
from recsys.domain.recency import (
    DEFAULT_RECENT_WEIGHT,
    DEFAULT_SEQUENCE_WEIGHT,
    RECENT_MOVIES,
    SEQUENCE_CONTEXT,
    blend,
    check_weight,
    query_vector,
)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_without_weight_or_recent_movies_the_query_is_the_users_vector() -> None:
    x = np.array([3.0, -1.0, 0.5])
    recent = np.array([[0.0, 1.0, 0.0]])
    assert np.array_equal(query_vector(x, recent, 0.0), x.astype(np.float32))
    assert np.array_equal(query_vector(x, np.empty((0, 3)), 1.0), x.astype(np.float32))


def test_the_query_leans_to_the_recent_mean_by_the_weight_whatever_the_norms() -> None:
    x = np.array([10.0, 0.0])
    recent = np.array([[0.0, 0.2], [0.0, 0.4]])  # short vectors: only the direction counts
    half, one = query_vector(x, recent, 0.5), query_vector(x, recent, 1.0)
    assert one == pytest.approx([1.0, 1.0])  # unit(x) + unit(mean)
    assert half == pytest.approx([1.0, 0.5])
    assert _cos(half, np.array([0.0, 1.0])) < _cos(one, np.array([0.0, 1.0]))


def test_a_user_with_no_informative_vector_is_queried_by_the_recent_movies() -> None:
    assert query_vector(np.zeros(2), np.array([[0.0, 3.0]]), 0.5) == pytest.approx([0.0, 0.5])


def test_the_weight_must_be_a_non_negative_number_named_in_the_error() -> None:
    assert check_weight(0, "w") == 0.0 and check_weight(0.5, "w") == 0.5
    for bad in (-0.1, float("nan"), "1", True, None):
        with pytest.raises(ValueError, match="recent_weight"):
            check_weight(bad, "recent_weight")
    for name in ("recent_weight", "sequence_weight"):
        with pytest.raises(ValueError, match=f"ALS_PARAMS {name}"):
            parse_params(f'{{"{name}": -1}}', False, "ALS_PARAMS")
    params = parse_params('{"recent_weight": 0.5, "sequence_weight": 1}', False, "ALS_PARAMS")
    assert (params.recent_weight, params.sequence_weight) == (0.5, 1.0)


def test_the_live_model_serves_its_stored_weights_and_older_models_none() -> None:
    params = {"popularity_boost": 0.2, "recent_weight": 0.5, "sequence_weight": 1.0}
    live = LiveModel.of({"version": "v2", "params": json.dumps(params)})  # type: ignore[arg-type]
    assert (live.recent_weight, live.sequence_weight) == (0.5, 1.0)
    old = LiveModel.of({"version": "v1", "params": {"popularity_boost": 0.2}})  # type: ignore[arg-type]
    assert old.recent_weight == DEFAULT_RECENT_WEIGHT == 0.0
    assert old.sequence_weight == DEFAULT_SEQUENCE_WEIGHT == 0.0


def test_the_query_reads_only_the_latest_movies() -> None:
    x = np.array([1.0, 0.0])
    newest = np.array([[0.0, 1.0]] * RECENT_MOVIES)
    older = np.array([[-1.0, 0.0]] * 10)
    assert query_vector(x, np.vstack([newest, older]), 1.0) == pytest.approx([1.0, 1.0])


def test_blend_standardises_each_users_parts_and_weighs_the_covisits() -> None:
    scores = np.array([[3.0, 2.0, 1.0], [10.0, 10.0, 10.0]])
    covisits = np.array([[0.0, 0.0, 6.0], [0.0, 1.0, 0.0]])
    blended = blend(scores, covisits, 2.0)
    # user 1: z(scores) = (1.22, 0, -1.22), z(covisits) = (-0.71, -0.71, 1.41)
    assert np.argsort(-blended[0]).tolist() == [2, 0, 1]
    # user 2: the scores tie, so they count 0 and co-visitation alone orders
    assert np.argmax(blended[1]) == 1 and blended[1][0] == blended[1][2]
    assert np.array_equal(blend(scores, covisits, 0.0), scores)  # no weight: the scores
    assert blend([1.0, 2.0], [0.0, 0.0], 1.0) == pytest.approx(blend([1.0, 2.0], [5.0, 5.0], 1.0))


def test_rerank_with_covisits_takes_each_users_context_and_ranks_by_the_blend() -> None:
    candidates = pd.DataFrame({
        "user_id": [1, 1, 1, 2, 2, 2],
        "rank": [1, 2, 3, 1, 2, 3],
        "movie_id": [10, 11, 12, 10, 11, 12],
        "score": [0.9, 0.8, 0.7, 0.9, 0.8, 0.7],
    })
    covisits = pd.DataFrame({"movie_id": [50, 50, 60, 99], "neighbour_id": [12, 11, 11, 10],
                             "weight": [1.0, 0.2, 0.3, 5.0]})
    # user 1 liked 50 last, then 60; 99 is beyond SEQUENCE_CONTEXT
    context = {1: np.array([50, 60] + [70] * (SEQUENCE_CONTEXT - 2) + [99]), 2: np.array([])}
    got = rerank_with_covisits(candidates, covisits, context, 2.0, 2)
    mine = got[got["user_id"] == 1]
    assert mine["movie_id"].tolist() == [12, 11] and mine["rank"].tolist() == [1, 2]
    # no context: co-visitation is 0 for all, the order is the scores'
    assert got[got["user_id"] == 2]["movie_id"].tolist() == [10, 11]


def test_depth_fetches_more_under_any_reranking() -> None:
    assert depth(10, 0.0, 0.0) == 10
    assert depth(10, 0.0, 0.5) == depth(10, 0.2, 0.0) == RERANK_DEPTH


def test_latest_liked_takes_each_users_newest_positive_pairs_by_their_latest_event() -> None:
    strengths = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2],
        "movie_id": [10, 11, 12, 13, 10],
        "strength": [5.0, -3.0, 1.0, 3.0, 1.0],
    })
    events = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 1, 2],
        "movie_id": [10, 11, 12, 13, 10, 10],
        "timestamp": [100, 400, 200, 300, 500, 50],  # movie 10 seen again last
    })
    got = latest_liked(strengths, events, n=2)
    assert got[1].tolist() == [10, 13]  # 11 is newer than 13 but disliked
    assert got[2].tolist() == [10]
    assert len(latest_liked(strengths, events)[1]) == 3 <= RECENT_MOVIES


def test_the_benchmark_queries_each_user_as_serving_does() -> None:
    items = np.array([10, 11, 12])
    y = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], np.float32)
    users = Factors(np.array([1, 2]), np.array([[2.0, 0.0], [0.0, 3.0]], np.float32), items, y)
    leaned = lean_to_recent(users, {1: np.array([11, 99])}, 1.0)  # 99: not a model item
    assert leaned.user_factors[0] == pytest.approx(query_vector([2.0, 0.0], y[[1]], 1.0))
    assert leaned.user_factors[1] == pytest.approx([0.0, 3.0])  # no recent movie: unchanged
    assert lean_to_recent(users, {1: np.array([11])}, 0.0) is users
