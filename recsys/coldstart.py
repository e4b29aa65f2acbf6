"""Item cold start: a new movie's first embedding, from what the catalogue knows of it.

A movie nobody has interacted with has no ALS factors. What is known at creation is its genres
and its year; `FeatureMap` is a ridge regression from those to the item factors, fitted by the
training job on the movies it learned (batch.als.train) and stored with the model version
(`models.cold_start`), so a prediction lies in the item space of the model that serves it.

Features: a bias, the genres one-hot scaled by 1/sqrt(number of genres) (a movie of three genres
is not three times as much of each), the standardised year and its square, and a flag for an
unknown year (whose standardised year is then 0). Genres the model never saw add nothing.

The map predicts the conditional mean of the factors, whose length shrinks towards the mean
item as the features explain less; under inner-product ranking such a vector would never reach
any list. The prediction is therefore given the median length of the training items of its
genres: "a typical movie of these genres", which is where a new movie's first interactions
will move it from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys.domain.vectors import EMBEDDING_DIM

# Ridge penalty per 100 training movies (the bias is not penalised): scaled with the catalogue,
# so its strength against X'X, which grows with it, does not depend on the catalogue's size.
DEFAULT_REG = 1.0
FORMAT = 1


@dataclass(frozen=True)
class FeatureMap:
    """Genres and year -> an item embedding of one model (rows of `weights` follow `features`)."""

    genres: tuple[str, ...]
    year_mean: float
    year_scale: float
    weights: np.ndarray[Any, Any]  # (n_features, rank)
    genre_norms: dict[str, float]  # median factor length of the training movies of each genre
    norm: float  # median factor length of all training movies

    @property
    def rank(self) -> int:
        return int(self.weights.shape[1])

    def features(self, genres: Iterable[str], year: float | None) -> np.ndarray[Any, Any]:
        rows = _features([list(genres)], [year], self.genres, self.year_mean, self.year_scale)
        row: np.ndarray[Any, Any] = rows[0]
        return row

    def length(self, genres: Iterable[str]) -> float:
        """The length of a typical training movie of `genres` (all movies when none is known)."""
        known = [self.genre_norms[g] for g in genres if g in self.genre_norms]
        return float(np.median(known)) if known else self.norm

    def embed(self, genres: Sequence[str], year: float | None) -> np.ndarray[Any, Any]:
        """The movie's embedding, zero-padded to EMBEDDING_DIM (float32)."""
        raw = self.features(genres, year) @ self.weights
        size = float(np.linalg.norm(raw))
        if size > 0:
            raw = raw * (self.length(genres) / size)
        out = np.zeros(EMBEDDING_DIM, dtype=np.float32)
        out[: self.rank] = raw
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "genres": list(self.genres),
            "year_mean": self.year_mean,
            "year_scale": self.year_scale,
            "weights": [[float(x) for x in row] for row in self.weights],
            "genre_norms": self.genre_norms,
            "norm": self.norm,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureMap:
        if data.get("format") != FORMAT:
            raise ValueError(f"cold-start map of format {data.get('format')!r}, expected {FORMAT}")
        genres = tuple(data["genres"])
        weights = np.asarray(data["weights"], dtype=np.float64)
        if weights.ndim != 2 or weights.shape[0] != _n_features(len(genres)):
            raise ValueError(f"cold-start weights of shape {weights.shape} for {len(genres)} genres")
        return cls(
            genres=genres,
            year_mean=float(data["year_mean"]),
            year_scale=float(data["year_scale"]),
            weights=weights,
            genre_norms={str(k): float(v) for k, v in data["genre_norms"].items()},
            norm=float(data["norm"]),
        )


def _known(year: float | None) -> bool:
    """A usable year: not None, NaN (a pandas gap) or a placeholder 0."""
    return year is not None and math.isfinite(year) and year > 0


def _n_features(n_genres: int) -> int:
    return 1 + n_genres + 3


def _features(
    genre_lists: Sequence[Sequence[str]],
    years: Sequence[float | None],
    vocabulary: Sequence[str],
    year_mean: float,
    year_scale: float,
) -> np.ndarray[Any, Any]:
    index = {g: i for i, g in enumerate(vocabulary)}
    x = np.zeros((len(genre_lists), _n_features(len(vocabulary))), dtype=np.float64)
    x[:, 0] = 1.0
    year_col = 1 + len(vocabulary)
    for row, (genres, year) in enumerate(zip(genre_lists, years, strict=True)):
        known = [index[g] for g in dict.fromkeys(genres) if g in index]
        for i in known:
            x[row, 1 + i] = 1.0 / math.sqrt(len(known))
        if year is None or not _known(year):
            x[row, year_col + 2] = 1.0
        else:
            z = (float(year) - year_mean) / year_scale
            x[row, year_col] = z
            x[row, year_col + 1] = z * z
    return x


def fit(
    genre_lists: Sequence[Sequence[str]],
    years: Sequence[float | None],
    factors: np.ndarray[Any, Any],
    reg: float = DEFAULT_REG,
) -> FeatureMap:
    """Ridge regression of `factors` (one row per movie, the model's rank wide) on the movies'
    genres and years. Raises ValueError without movies to learn from."""
    factors = np.asarray(factors, dtype=np.float64)
    n = len(factors)
    if factors.ndim != 2 or n == 0 or len(genre_lists) != n or len(years) != n:
        raise ValueError("fit needs one genre list, year and factor row per movie")
    vocabulary = tuple(sorted({g for genres in genre_lists for g in genres}))
    known_years = np.array([y for y in years if _known(y)], dtype=np.float64)
    year_mean = float(known_years.mean()) if len(known_years) else 0.0
    year_scale = float(known_years.std()) if len(known_years) > 1 else 0.0
    year_scale = year_scale if year_scale > 0 else 1.0
    x = _features(genre_lists, years, vocabulary, year_mean, year_scale)
    penalty = reg * len(factors) / 100.0 * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    weights = np.linalg.solve(x.T @ x + penalty, x.T @ factors)
    lengths = np.linalg.norm(factors, axis=1)
    by_genre: dict[str, list[float]] = {}
    for genres, length in zip(genre_lists, lengths, strict=True):
        for g in set(genres):
            by_genre.setdefault(g, []).append(float(length))
    return FeatureMap(
        genres=vocabulary,
        year_mean=year_mean,
        year_scale=year_scale,
        weights=weights,
        genre_norms={g: float(np.median(v)) for g, v in sorted(by_genre.items())},
        norm=float(np.median(lengths)),
    )


def genre_mean(vectors: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    """The fallback for a model without a FeatureMap: the mean direction of the embeddings of
    the movies sharing a genre with the new one, at their median length (as `embed`). None
    without any."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) == 0:
        return None
    mean = vectors.mean(axis=0)
    size = float(np.linalg.norm(mean))
    if size == 0:
        return None
    out: np.ndarray[Any, Any] = mean * (float(np.median(np.linalg.norm(vectors, axis=1))) / size)
    return out.astype(np.float32)
