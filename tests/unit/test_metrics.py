"""Ranking metrics against values computed by hand (Microsoft Recommenders' definitions)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from batch.als import metrics

# user 1 has 4 relevant items, user 2 one; k = 3.
TRUTH = pd.DataFrame(
    {"user_id": [1, 1, 1, 1, 2], "movie_id": [1, 2, 3, 6, 4], "rating": [5.0, 4.0, 3.0, 2.0, 4.0]}
)
# user 1's top 3: 1 (hit), 5, 2 (hit); user 2's: 7, 4 (hit), 8. The 4th items fall outside k.
PRED = pd.DataFrame(
    {
        "user_id": [1, 1, 1, 1, 2, 2, 2, 2],
        "movie_id": [2, 1, 5, 3, 4, 7, 8, 9],
        "score": [0.7, 0.9, 0.8, 0.1, 0.4, 0.5, 0.2, 0.0],
    }
)


def test_precision_counts_hits_over_k() -> None:
    assert metrics.precision_at_k(TRUTH, PRED, k=3) == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_recall_counts_hits_over_relevant() -> None:
    assert metrics.recall_at_k(TRUTH, PRED, k=3) == pytest.approx((2 / 4 + 1 / 1) / 2)


def test_map_at_k_normalises_by_min_relevant_k() -> None:
    user1 = (1 / 1 + 2 / 3) / 3
    user2 = (1 / 2) / 1
    assert metrics.map_at_k(TRUTH, PRED, k=3) == pytest.approx((user1 + user2) / 2)


def test_map_normalises_by_all_relevant() -> None:
    user1 = (1 / 1 + 2 / 3) / 4
    user2 = (1 / 2) / 1
    assert metrics.map_full(TRUTH, PRED, k=3) == pytest.approx((user1 + user2) / 2)


def test_ndcg_binary_gain() -> None:
    ln = math.log
    user1 = (1 / ln(2) + 1 / ln(4)) / (1 / ln(2) + 1 / ln(3) + 1 / ln(4))
    user2 = (1 / ln(3)) / (1 / ln(2))
    assert metrics.ndcg_at_k(TRUTH, PRED, k=3) == pytest.approx((user1 + user2) / 2)


def test_perfect_ranking_scores_one() -> None:
    perfect = TRUTH.assign(score=lambda d: -d.index.to_series().to_numpy())
    assert metrics.ndcg_at_k(TRUTH, perfect, k=3) == pytest.approx(1.0)
    assert metrics.map_at_k(TRUTH, perfect, k=3) == pytest.approx(1.0)


def test_users_missing_from_predictions() -> None:
    # Precision/recall/MAP average over the common users; nDCG over the users of the truth.
    truth = pd.concat([TRUTH, pd.DataFrame({"user_id": [3], "movie_id": [1], "rating": [3.0]})])
    assert metrics.precision_at_k(truth, PRED, k=3) == metrics.precision_at_k(TRUTH, PRED, k=3)
    assert metrics.ndcg_at_k(truth, PRED, k=3) == pytest.approx(
        metrics.ndcg_at_k(TRUTH, PRED, k=3) * 2 / 3
    )


def test_no_hits_is_zero() -> None:
    miss = PRED.assign(movie_id=PRED["movie_id"] + 100)
    assert metrics.ranking_metrics(TRUTH, miss, k=3) == {
        "ndcg@3": 0.0, "precision@3": 0.0, "recall@3": 0.0, "map@3": 0.0, "map": 0.0
    }


def test_catalogue_coverage() -> None:
    # Top 3 items: {1, 5, 2} and {7, 4, 8}.
    assert metrics.catalogue_coverage(PRED, catalogue_size=10, k=3) == pytest.approx(0.6)


def test_totals_of_disjoint_users_add_up_to_the_metrics_of_all() -> None:
    # What lets each Spark task score its own users and the driver add the sums.
    one = metrics.totals(TRUTH[TRUTH.user_id == 1], PRED[PRED.user_id == 1], k=3)
    two = metrics.totals(TRUTH[TRUTH.user_id == 2], PRED[PRED.user_id == 2], k=3)
    whole = metrics.ranking_metrics(TRUTH, PRED, k=3, catalogue_size=10)
    assert (one + two).as_metrics(3, catalogue_size=10) == pytest.approx(whole)
    assert whole["coverage@3"] == pytest.approx(0.6)
    assert (one + two).truth_users == 2 and (one + two).truth_pairs == 5


def test_totals_of_no_users_are_zero_not_a_division_error() -> None:
    assert metrics.Totals().as_metrics(10, catalogue_size=0) == {
        "ndcg@10": 0.0, "precision@10": 0.0, "recall@10": 0.0, "map@10": 0.0, "map": 0.0,
        "coverage@10": 0.0,
    }


def test_top_k_ranks_by_score() -> None:
    best = metrics.top_k(PRED, 2)
    assert best[["user_id", "movie_id", "rank"]].values.tolist() == [
        [1, 1, 1], [1, 5, 2], [2, 7, 1], [2, 4, 2]
    ]
