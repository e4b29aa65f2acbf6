"""bench/quality.py: the splits, and tuning that never reads the test part."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "quality.py"
_spec = importlib.util.spec_from_file_location("bench_quality", _PATH)
assert _spec is not None and _spec.loader is not None
quality = importlib.util.module_from_spec(_spec)
sys.modules["bench_quality"] = quality
_spec.loader.exec_module(quality)


def _frame(users: int = 4, per_user: int = 10) -> pd.DataFrame:
    rows = [
        (u, 100 * u + i, 4.0, 1_000 + 37 * i % per_user)  # timestamps not in movie order
        for u in range(1, users + 1)
        for i in range(per_user)
    ]
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])


def _pairs(df: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(df["user_id"], df["movie_id"], strict=True))


def test_temporal_split_holds_out_each_users_latest_fifth() -> None:
    data = _frame()
    train, test = quality.temporal_split(data)
    assert len(test) == 4 * 2 and _pairs(train) | _pairs(test) == _pairs(data)
    for user, held in test.groupby("user_id"):
        kept = train[train["user_id"] == user]
        assert held["timestamp"].min() >= kept["timestamp"].max()


def test_stratified_split_is_per_user_and_seeded() -> None:
    data = _frame()
    train, test = quality.stratified_split(data)
    again, _ = quality.stratified_split(data)
    assert _pairs(train) == _pairs(again) and not _pairs(train) & _pairs(test)
    assert (train.groupby("user_id").size() == round(0.75 * 10)).all()


@dataclass
class Recorder:
    """A model whose candidate "good" wins on anything but the test pairs, "bad" on those.

    Recommending from a frame that contains a test pair raises: tuning must not see them.
    """

    test: pd.DataFrame
    name: str = "recorder"
    candidates: Sequence[dict[str, Any]] = ({"pick": "bad"}, {"pick": "good"})
    seen_frames: list[pd.DataFrame] = field(default_factory=list)

    def recommend(
        self, params: dict[str, Any], train: pd.DataFrame, users: np.ndarray, k: int
    ) -> pd.DataFrame:
        if _pairs(train) & _pairs(self.test):
            raise AssertionError("a test pair reached the model")
        self.seen_frames.append(train)
        test_items = set(self.test["movie_id"])
        # "good" recommends items outside the test; "bad" recommends exactly the test items.
        wanted = params["pick"] == "bad"
        rows = []
        for user in users:
            held = [m for m in range(100 * user, 100 * user + 10) if (m in test_items) == wanted]
            unseen = [m for m in held if (user, m) not in _pairs(train)][:k]
            rows += [(user, m, float(k - r), r + 1) for r, m in enumerate(unseen)]
        return pd.DataFrame(rows, columns=["user_id", "movie_id", "score", "rank"])


def test_selection_reads_only_the_training_part() -> None:
    data = _frame()
    train, test = quality.temporal_split(data)
    model = Recorder(test)
    chosen = quality.select(model, train, quality.temporal_split)
    # On validation "good" is the one that hits; on test it would be "bad".
    assert chosen.params == {"pick": "good"}
    assert all(not _pairs(f) & _pairs(test) for f in model.seen_frames)


def test_evaluate_scores_the_validation_choice_once_on_test() -> None:
    data = _frame()
    train, test = quality.temporal_split(data)
    outcome = quality.evaluate(Recorder(test), train, test, quality.temporal_split)
    assert outcome.selection.params == {"pick": "good"}
    assert outcome.metrics["ndcg@10"] == 0.0  # the test-best "bad" was never picked


def test_paired_bootstrap_interval_brackets_the_mean() -> None:
    ours = pd.Series([0.5, 0.6, 0.7, 0.4], index=[1, 2, 3, 4])
    theirs = pd.Series([0.1, 0.2, 0.3], index=[1, 2, 3])  # user 4 missing counts 0
    mean, low, high = quality.paired_bootstrap(ours, theirs, samples=200)
    assert mean == pytest.approx(0.4)
    assert low <= mean <= high


def test_decay_halves_per_half_life_before_each_users_latest_signal() -> None:
    day = quality.SECONDS_PER_DAY
    users = np.array([1, 1, 1, 2])
    times = np.array([0.0, 90 * day, 180 * day, 5 * day])
    weights = quality.decay_weights(users, times, half_life_days=90.0)
    # User 1's latest is day 180; user 2's only signal is their latest, whatever its date.
    assert weights == pytest.approx([0.25, 0.5, 1.0, 1.0])


def test_time_decay_reweights_each_pair_by_its_latest_event() -> None:
    day = quality.SECONDS_PER_DAY
    ratings = pd.DataFrame({
        "user_id": [1, 1, 1], "movie_id": [10, 10, 11],
        "rating": [4.0, 5.0, 5.0], "timestamp": [0.0, 30 * day, 60 * day],
    })
    pairs = pd.DataFrame({"user_id": [1, 1], "movie_id": [10, 11], "strength": [6.0, 5.0]})
    out = quality.time_decay(30.0)(pairs, ratings)
    assert out.columns.tolist() == ["user_id", "movie_id", "strength"]
    assert out["strength"].tolist() == pytest.approx([3.0, 5.0])


def test_negatives_as_replaces_only_negative_strengths() -> None:
    pairs = pd.DataFrame({"user_id": [1, 1], "movie_id": [10, 11], "strength": [-3.0, 5.0]})
    out = quality.negatives_as(1.0)(pairs, pairs)
    assert out["strength"].tolist() == [1.0, 5.0]


def test_rating_neutral_lever_rederives_each_pairs_signal() -> None:
    ratings = pd.DataFrame({"user_id": [1, 1, 2], "movie_id": [10, 11, 10], "rating": [1.0, 3.0, 5.0]})
    every_rating = quality.rating_neutral(0.0)(pd.DataFrame(), ratings)
    assert every_rating["strength"].tolist() == [2.0, 6.0, 10.0]  # all positive
    curating = quality.rating_neutral(3.0)(pd.DataFrame(), ratings)
    assert curating[["movie_id", "strength"]].values.tolist() == [[10, -4.0], [10, 4.0]]  # 3 stars: no signal


def test_item_knn_keeps_each_items_nearest_neighbours() -> None:
    x = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1]], dtype=np.float32)
    sim = quality.item_knn(x, neighbours=1)
    assert np.all(np.diag(sim) == 0)
    # Items 0 and 1 are always together: each other's nearest; item 3 only meets item 2.
    assert sim[0].argmax() == 1 and sim[1].argmax() == 0 and sim[3].argmax() == 2
    assert (sim > 0).sum(axis=1).max() == 1
    assert quality.item_knn(x, neighbours=3)[0, 2] > 0  # wide enough: every co-occurrence kept


def test_ease_weights_have_a_zero_diagonal_and_solve_the_ridge() -> None:
    x = np.random.default_rng(0).integers(0, 2, size=(30, 5)).astype(np.float64)
    b = quality.ease_weights(x, lam=2.0)
    assert np.allclose(np.diag(b), 0.0)
    # The constrained ridge's normal equations: (XᵀX + λI) B = XᵀX - diag(μ), so off the
    # diagonal (XᵀX + λI) B equals XᵀX.
    xtx = x.T @ x
    lhs = (xtx + 2.0 * np.eye(5)) @ b
    off = ~np.eye(5, dtype=bool)
    assert np.allclose(lhs[off], xtx[off])


def test_ials_half_step_is_the_served_step_for_every_row() -> None:
    from batch.foldin import UserStep, gram

    rng = np.random.default_rng(1)
    other = rng.normal(size=(6, 3))
    rows = [(np.array([0, 2]), np.array([5.0, 1.0])), (np.array([1, 2, 5]), np.array([3.0, -3.0, 1.0]))]
    x = quality.ials_side(rows, other, 0.5, 0.1, quality.SIGNED)
    step = UserStep(unobserved=0.5, user_reg=0.1, reading=quality.SIGNED)
    for vector, (observed, signals) in zip(x, rows, strict=True):
        np.testing.assert_allclose(vector, step.solve(other[observed], signals, gram(other), len(other)))


def test_production_pairs_sum_the_rating_signal_and_drop_neutral_pairs() -> None:
    ratings = pd.DataFrame({"user_id": [1, 1, 1, 2], "movie_id": [10, 10, 11, 10],
                            "rating": [5.0, 1.0, 2.5, 2.0], "timestamp": [0, 1, 2, 3]})
    pairs = quality.production_pairs(ratings)
    assert pairs.values.tolist() == [[1, 10, 2.0], [2, 10, -1.0]]  # 5 + 1 stars: +5 - 3; 2.5: none


def test_ials_recommends_within_each_users_taste_block() -> None:
    # Two groups of users, each liking one half of the movies; every user has seen all but one
    # movie of their half: the top 1 must be that movie.
    rows = []
    for u in range(20):
        half = range(0, 8) if u < 10 else range(8, 16)
        rows += [(u, m, 4.0, 0) for m in half if m != (u % 8) + half[0]]
    train = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])
    model = quality.Ials(rank=4, epochs=8)
    for signal in (quality.IMPLICIT, quality.SIGNED):
        params = {"signal": signal, "unobserved": 0.1, "reg": 0.01, "popularity_boost": 0.0}
        recs = model.recommend(params, train, np.arange(20), 1)
        expected = [(u % 8) + (0 if u < 10 else 8) for u in recs["user_id"]]
        assert recs["movie_id"].tolist() == expected
