"""The popularity prior's one formula (recsys.domain.popularity) and the live model's value."""

from __future__ import annotations

import json

import pytest

from recommender_svc.store import LiveModel
from recsys.domain.popularity import DEFAULT_POPULARITY_BOOST, RERANK_DEPTH, depth, prior


def test_prior_counts_an_unseen_movie_as_one() -> None:
    assert prior([0, 1, 32], 0.2) == pytest.approx([1.0, 1.0, 2.0])
    assert prior([0, 5, 1000], 0.0) == pytest.approx([1.0, 1.0, 1.0])


def test_depth_fetches_more_only_under_a_prior() -> None:
    assert depth(10, 0.0) == 10
    assert depth(10, 0.1) == RERANK_DEPTH
    assert depth(RERANK_DEPTH + 5, 0.1) == RERANK_DEPTH + 5


def test_live_model_reads_its_stored_prior() -> None:
    assert LiveModel.of(None) == LiveModel("", 0.0)
    row = {"version": "v2", "params": json.dumps({"alpha": 1.0, "popularity_boost": 0.2})}
    assert LiveModel.of(row, 17.0) == LiveModel("v2", 0.2, 17.0)  # type: ignore[arg-type]
    # A model stored before the prior existed is served with the default, as the gate scores it.
    old = {"version": "v1", "params": {"alpha": 1.0}}
    assert LiveModel.of(old) == LiveModel("v1", DEFAULT_POPULARITY_BOOST)  # type: ignore[arg-type]
    assert LiveModel.of({"version": "v0", "params": None}).popularity_boost == DEFAULT_POPULARITY_BOOST  # type: ignore[arg-type]
