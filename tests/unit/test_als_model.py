"""ALS transforms on tiny frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from batch.als.model import (
    AlsParams,
    Factors,
    collect_factors,
    fit_implicit,
    interaction_strengths,
    pad,
    top_n_excluding_seen,
)
from batch.foldin import UserStep
from recsys.domain.events import event_signal

EVENTS = [
    # user, movie, event_type, rating, occurred_at (seconds)
    (1, 10, "view", None, 1),
    (1, 10, "click", None, 2),
    (1, 11, "rate", 5.0, 3),
    (1, 11, "rate", 2.0, 4),
    (2, 10, "rate", None, 5),
    (2, 11, "dislike", None, 6),
    (2, 12, "watch", None, 7),
]


def events_frame(spark, rows=EVENTS):  # type: ignore[no-untyped-def]
    pdf = pd.DataFrame(rows, columns=["user_id", "movie_id", "event_type", "rating", "occurred_at"])
    pdf["occurred_at"] = pd.to_datetime(pdf["occurred_at"], unit="s", utc=True)
    return spark.createDataFrame(pdf)


def test_strengths_sum_the_shared_event_signals(spark) -> None:  # type: ignore[no-untyped-def]
    got = {
        (r.user_id, r.movie_id): r.strength
        for r in interaction_strengths(events_frame(spark)).collect()
    }
    expected: dict[tuple[int, int], float] = {}
    for user, movie, kind, rating, _ in EVENTS:
        expected[(user, movie)] = expected.get((user, movie), 0.0) + event_signal(kind, rating)
    expected = {k: v for k, v in expected.items() if v != 0}
    assert (2, 10) not in got  # a rate event without a rating says nothing
    assert got == pytest.approx(expected)
    assert got[(2, 11)] < 0  # a dislike stays a (confident) negative


def test_implicit_als_ranks_the_co_watched_item_first(spark) -> None:  # type: ignore[no-untyped-def]
    # Users 1-3 all like 10 and 11; user 4 likes 10 only, and 12 is liked by nobody like him.
    rows = [(u, m, 3.0) for u in (1, 2, 3) for m in (10, 11)] + [(4, 10, 3.0), (5, 12, 3.0)]
    strengths = spark.createDataFrame(pd.DataFrame(rows, columns=["user_id", "movie_id", "strength"]))
    model = fit_implicit(strengths, AlsParams(rank=4, reg_param=0.01, alpha=5.0, max_iter=10))
    factors = collect_factors(model)
    assert factors.user_factors.shape == (5, 4)
    assert list(factors.item_ids) == [10, 11, 12]
    seen = pd.DataFrame(rows, columns=["user_id", "movie_id", "strength"])
    recs = top_n_excluding_seen(factors, seen, n=2, users=np.array([4]))
    assert recs["movie_id"].tolist()[0] == 11


FACTORS = Factors(
    user_ids=np.array([1, 2]),
    user_factors=np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
    item_ids=np.array([10, 11, 12]),
    item_factors=np.array([[3.0, 0.0], [2.0, 1.0], [0.0, 2.0]], dtype=np.float32),
)


def test_top_n_excludes_seen_and_ranks_by_inner_product() -> None:
    seen = pd.DataFrame({"user_id": [1, 2, 99], "movie_id": [10, 12, 10]})
    recs = top_n_excluding_seen(FACTORS, seen, n=5)
    assert recs.values.tolist() == [[1, 1, 11, 2.0], [1, 2, 12, 0.0], [2, 1, 11, 1.0], [2, 2, 10, 0.0]]


def test_top_n_popularity_prior() -> None:
    seen = pd.DataFrame({"user_id": [], "movie_id": []}, dtype=np.int64)
    # User 1 scores 3, 2, 0; item 11 is 100x more popular: with a prior of 0.5, 2 x 10 > 3 x 1.
    popularity = np.array([1, 100, 1])
    recs = top_n_excluding_seen(FACTORS, seen, n=2, popularity=popularity, boost=0.5)
    mine = recs[recs.user_id == 1]
    assert mine["movie_id"].tolist() == [11, 10]
    assert mine["score"].tolist() == pytest.approx([20.0, 3.0])
    # Without a prior (or without counts) the inner product alone ranks.
    for plain in (top_n_excluding_seen(FACTORS, seen, n=2, popularity=popularity),
                  top_n_excluding_seen(FACTORS, seen, n=2, boost=0.5)):
        assert plain[plain.user_id == 1]["movie_id"].tolist() == [10, 11]


def test_the_prior_reranks_only_the_nearest(monkeypatch: pytest.MonkeyPatch) -> None:
    # As retrieval does: the prior re-ranks the RERANK_DEPTH nearest items, so with a depth of
    # 2 the user (scores 3, 2, 1) never gets item 12, however popular.
    from recsys.domain import popularity as prior

    factors = Factors(np.array([1]), np.array([[1.0]], np.float32), np.array([10, 11, 12]),
                      np.array([[3.0], [2.0], [1.0]], np.float32))
    seen = pd.DataFrame({"user_id": [], "movie_id": []}, dtype=np.int64)
    popular_12 = np.array([1, 1, 10**6])
    monkeypatch.setattr(prior, "RERANK_DEPTH", 2)
    assert top_n_excluding_seen(factors, seen, n=1, popularity=popular_12, boost=1.0)["movie_id"].item() == 10
    monkeypatch.setattr(prior, "RERANK_DEPTH", 3)
    assert top_n_excluding_seen(factors, seen, n=1, popularity=popular_12, boost=1.0)["movie_id"].item() == 12


def test_pad_keeps_inner_products() -> None:
    padded = pad(FACTORS.item_factors, 64)
    assert padded.shape == (3, 64)
    assert padded @ pad(FACTORS.user_factors, 64).T == pytest.approx(
        FACTORS.item_factors @ FACTORS.user_factors.T
    )
    with pytest.raises(ValueError):
        pad(np.zeros((1, 65)))


def test_params_round_trip() -> None:
    p = AlsParams(rank=8, alpha=3.0)
    assert AlsParams.from_dict({**p.as_dict(), "unknown": 1}) == p


def test_params_stored_by_older_versions_stay_readable() -> None:
    # Models trained before popularity_exponent and extra were removed stored both.
    stored = {**AlsParams(rank=8).as_dict(), "popularity_exponent": 0.5, "extra": {"note": "x"}}
    assert AlsParams.from_dict(stored) == AlsParams(rank=8)
    assert "popularity_exponent" not in AlsParams().as_dict()
    # Stored before the user step was a setting: folded in with Spark's own step, as trained.
    before = {k: v for k, v in AlsParams(rank=8).as_dict().items()
              if k not in ("unobserved_weight", "user_reg", "signal_reading")}
    assert AlsParams.from_dict(before).user_step.unobserved is None
    rendle = AlsParams(rank=8, unobserved_weight=0.3, user_reg=0.02, signal_reading="implicit")
    assert AlsParams.from_dict(rendle.as_dict()).user_step == UserStep(
        rendle.alpha, rendle.reg_param, 0.3, 0.02, "implicit")


def test_training_params_take_the_deployments_overrides_and_name_a_bad_one() -> None:
    from batch.als.train import parse_params

    rendle = parse_params('{"unobserved_weight": 0.3, "signal_reading": "implicit"}', False, "ALS_PARAMS")
    assert rendle.user_step.unobserved == 0.3 and rendle.user_step.reading == "implicit"
    assert parse_params("", True) == AlsParams(rank=32, max_iter=8)  # make up's first model
    for raw, why in (("{", "not JSON"), ("[1]", "JSON object"), ('{"unobserved": 1}', "unknown")):
        with pytest.raises(ValueError, match=f"ALS_PARAMS.*{why}"):
            parse_params(raw, False, "ALS_PARAMS")
