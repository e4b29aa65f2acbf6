"""recsys.coldstart: the genre/year -> item-embedding map fitted with each model, and its fallback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys import coldstart
from recsys.domain.vectors import EMBEDDING_DIM

GENRES = ("Action", "Comedy", "Drama", "Horror")


def _catalogue(n: int = 400, rank: int = 8, seed: int = 7):
    """Movies whose factors are a known function of their genres and year, plus noise."""
    rng = np.random.default_rng(seed)
    genre_dirs = {g: rng.normal(size=rank) * 2 for g in GENRES}
    year_dir = rng.normal(size=rank)
    genre_lists, years, rows = [], [], []
    for _ in range(n):
        gs = list(rng.choice(GENRES, size=rng.integers(1, 3), replace=False))
        year = int(rng.integers(1950, 2020))
        vec = sum(genre_dirs[g] for g in gs) / np.sqrt(len(gs)) + year_dir * (year - 1985) / 20
        genre_lists.append(gs)
        years.append(year)
        rows.append(vec + rng.normal(scale=0.1, size=rank))
    return genre_lists, years, np.array(rows), genre_dirs


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_new_movie_lands_near_the_movies_of_its_genre() -> None:
    genre_lists, years, factors, _ = _catalogue()
    fmap = coldstart.fit(genre_lists, years, factors)
    new = fmap.embed(["Horror"], 1990)[: factors.shape[1]]
    horror = factors[[gs == ["Horror"] for gs in genre_lists]]
    comedy = factors[[gs == ["Comedy"] for gs in genre_lists]]
    assert _cos(new, horror.mean(axis=0)) > 0.9
    assert _cos(new, horror.mean(axis=0)) > _cos(new, comedy.mean(axis=0)) + 0.3


def test_the_year_moves_the_embedding_along_what_the_year_explains() -> None:
    genre_lists, years, factors, _ = _catalogue()
    fmap = coldstart.fit(genre_lists, years, factors)
    old, recent = (fmap.features(["Drama"], y) @ fmap.weights for y in (1955, 2015))
    late = factors[[y > 2005 and gs == ["Drama"] for gs, y in zip(genre_lists, years, strict=True)]]
    early = factors[[y < 1965 and gs == ["Drama"] for gs, y in zip(genre_lists, years, strict=True)]]
    assert _cos(recent - old, late.mean(axis=0) - early.mean(axis=0)) > 0.9


def test_the_embedding_has_the_typical_length_of_its_genres_and_is_padded() -> None:
    genre_lists, years, factors, _ = _catalogue(rank=8)
    fmap = coldstart.fit(genre_lists, years, factors)
    vec = fmap.embed(["Action"], 2000)
    assert vec.shape == (EMBEDDING_DIM,) and vec.dtype == np.float32
    assert not vec[8:].any()
    lengths = [np.linalg.norm(f) for f, gs in zip(factors, genre_lists, strict=True) if "Action" in gs]
    assert np.linalg.norm(vec) == pytest.approx(np.median(lengths), rel=1e-5)


def test_unknown_genres_and_years_still_give_a_vector() -> None:
    genre_lists, years, factors, _ = _catalogue()
    fmap = coldstart.fit(genre_lists, years, factors)
    # A genre the model never saw adds nothing; an unknown year uses its own flag.
    np.testing.assert_allclose(fmap.features(["Action", "Western"], None), fmap.features(["Action"], None))
    vec = fmap.embed(["Western"], None)
    assert np.isfinite(vec).all() and np.linalg.norm(vec) == pytest.approx(fmap.norm, rel=1e-5)


def test_a_missing_year_in_the_training_data_is_unknown_not_nan() -> None:
    """pandas holds a missing year as NaN: it must be the unknown-year flag, not poison the fit."""
    genre_lists, years, factors, _ = _catalogue()
    with_gaps: list[float | None] = [float("nan") if i % 10 == 0 else y for i, y in enumerate(years)]
    fmap = coldstart.fit(genre_lists, with_gaps, factors)
    assert np.isfinite(fmap.weights).all()
    assert np.isfinite(fmap.embed(["Drama"], float("nan"))).all()
    np.testing.assert_allclose(fmap.features(["Drama"], float("nan")), fmap.features(["Drama"], None))


def test_round_trips_through_json_as_stored_with_the_model() -> None:
    genre_lists, years, factors, _ = _catalogue()
    fmap = coldstart.fit(genre_lists, years, factors)
    back = coldstart.FeatureMap.from_json(json.loads(json.dumps(fmap.to_json())))
    np.testing.assert_allclose(back.embed(["Comedy", "Drama"], 1977), fmap.embed(["Comedy", "Drama"], 1977))
    with pytest.raises(ValueError, match="format"):
        coldstart.FeatureMap.from_json({**fmap.to_json(), "format": 99})
    with pytest.raises(ValueError, match="shape"):
        coldstart.FeatureMap.from_json({**fmap.to_json(), "genres": ["Action"]})


def test_fit_refuses_misaligned_or_empty_input() -> None:
    with pytest.raises(ValueError):
        coldstart.fit([], [], np.zeros((0, 4)))
    with pytest.raises(ValueError):
        coldstart.fit([["Action"]], [2000, 2001], np.zeros((1, 4)))


def test_genre_mean_fallback_is_the_mean_direction_at_the_median_length() -> None:
    vectors = np.array([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mean = coldstart.genre_mean(vectors)
    assert mean is not None
    assert _cos(mean, vectors.mean(axis=0)) == pytest.approx(1.0)
    assert np.linalg.norm(mean) == pytest.approx(np.median(np.linalg.norm(vectors, axis=1)))
    assert coldstart.genre_mean(np.zeros((0, 2))) is None
    assert coldstart.genre_mean(np.array([[1.0, 0.0], [-1.0, 0.0]])) is None
