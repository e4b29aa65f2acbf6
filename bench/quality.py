"""Model quality under two protocols, every model tuned on validation only, beside baselines.

    .venv/bin/python bench/quality.py [--protocol ml100k|temporal|both] [--levers] [--out bench/quality.md]

Protocols (top 10, items seen in training excluded, every held-out item of a user relevant,
metrics as Microsoft Recommenders' `python_evaluation.py`, re-implemented in `batch.als.metrics`):

- `ml100k`: theirs (`examples/06_benchmarks/movielens.ipynb`): MovieLens 100K,
  `python_stratified_split` 75/25 by user with seed 42;
- `temporal`: MovieLens latest-small, each user's last 20 % of ratings by time held out.

Tuning never sees the test part: the protocol's own split is applied again inside the training
part (fit / validation), each model's candidates are scored on that validation part by NDCG@10,
and the chosen one is refitted on the whole training part and scored once on test.

Models: ours (Spark implicit ALS on the production signal, `batch.als.model.fit_implicit`, user
vectors folded in exactly as the nightly job publishes them, with the model's user step
(`batch.foldin.UserStep`: Spark's or Rendle et al. 2021's), `batch.als.evaluate`, ranked with the
model's popularity prior as retrieval ranks, `recsys.domain.popularity`), popularity, EASE
(Steck 2019, closed form), and iALS with the regularisation of Rendle et al. 2021 in numpy (the
best-tuned form of our model family, which Spark's ALS cannot express). Our NDCG@10 minus each
baseline's comes with a paired bootstrap 95 % interval over test users.

`--levers` also measures changes to the served defaults one at a time on the same validation
split (`LEVERS`: time decay of old signals, a larger rank, other readings of a rating, the
popularity prior; and `SecondStage`, an item-item re-ranking of the served candidates), so that
what is adopted into the served defaults is chosen there too.

Data: $MOVIELENS_DIR (default ../shared/data/movielens relative to the repository) holding
`ml-100k/u.data` and `ml-latest-small/ratings.csv`. Missing data exits 0 with a message, or
fails when CI=true.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from batch.als import metrics  # noqa: E402
from batch.als.model import AlsParams, Factors, top_n_excluding_seen  # noqa: E402
from batch.foldin import fold_in_rendle, gram  # noqa: E402
from recsys.domain.events import IMPLICIT, RATING_NEUTRAL, RATING_SCALE, SIGNED  # noqa: E402
from recsys.domain.popularity import RERANK_DEPTH, depth, prior  # noqa: E402

K = 10
SEED = 42
BOOTSTRAP_SAMPLES = 1000

# Their published Movielens 100k table (README "Algorithm Comparison", 15 epochs).
REFERENCE = {
    "ALS (theirs, explicit)": {"map": 0.004732, "ndcg@10": 0.044239, "precision@10": 0.048462,
                               "recall@10": 0.017796},
    "BiVAE": {"map": 0.146126, "ndcg@10": 0.475077, "precision@10": 0.411771, "recall@10": 0.219145},
    "BPR": {"map": 0.132478, "ndcg@10": 0.441997, "precision@10": 0.388229, "recall@10": 0.212522},
    "LightGCN": {"map": 0.088526, "ndcg@10": 0.419846, "precision@10": 0.379626, "recall@10": 0.144336},
    "NCF": {"map": 0.107720, "ndcg@10": 0.396118, "precision@10": 0.347296, "recall@10": 0.180775},
    "SAR": {"map": 0.110591, "ndcg@10": 0.382461, "precision@10": 0.330753, "recall@10": 0.176385},
}

Split = Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]


# -- data ---------------------------------------------------------------------------------------


def data_dir() -> Path:
    default = REPO.parent / "shared" / "data" / "movielens"
    return Path(os.environ.get("MOVIELENS_DIR", str(default)))


def load_ml100k(root: Path) -> pd.DataFrame:
    return pd.read_csv(
        root / "ml-100k" / "u.data",
        sep="\t",
        names=["user_id", "movie_id", "rating", "timestamp"],
        dtype={"user_id": np.int64, "movie_id": np.int64, "rating": np.float32, "timestamp": np.int64},
    )


def load_latest_small(root: Path) -> pd.DataFrame:
    raw = pd.read_csv(root / "ml-latest-small" / "ratings.csv")
    return pd.DataFrame({
        "user_id": raw["userId"].astype(np.int64),
        "movie_id": raw["movieId"].astype(np.int64),
        "rating": raw["rating"].astype(np.float32),
        "timestamp": raw["timestamp"].astype(np.int64),
    })


# -- splits -------------------------------------------------------------------------------------


def stratified_split(
    data: pd.DataFrame, ratio: float = 0.75, seed: int = SEED
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Their `python_stratified_split`: per user, shuffle with `seed`, first round(ratio*n) train."""
    train_parts, test_parts = [], []
    for _, group in data.groupby("user_id"):
        shuffled = group.sample(frac=1, random_state=seed)
        cut = round(ratio * len(shuffled))
        train_parts.append(shuffled.iloc[:cut])
        test_parts.append(shuffled.iloc[cut:])
    return pd.concat(train_parts), pd.concat(test_parts)


def temporal_split(data: pd.DataFrame, ratio: float = 0.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, the first round(ratio*n) interactions by time train, the rest test.

    Ties in time are broken by movie id so that the split is deterministic.
    """
    ordered = data.sort_values(["user_id", "timestamp", "movie_id"], kind="mergesort")
    position = ordered.groupby("user_id").cumcount().to_numpy()
    size = ordered.groupby("user_id")["movie_id"].transform("size").to_numpy()
    in_train = position < np.round(ratio * size)
    return ordered[in_train], ordered[~in_train]


# -- models -------------------------------------------------------------------------------------


class Model(Protocol):
    """A recommender under test: candidate settings, and top-k lists from a training frame."""

    name: str
    candidates: Sequence[dict[str, Any]]

    def recommend(
        self, params: dict[str, Any], train: pd.DataFrame, users: np.ndarray, k: int
    ) -> pd.DataFrame:
        """user_id, movie_id, score, rank of the top k per user, nothing seen in `train`."""
        ...


def _binary_matrix(train: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    user_ids, u = np.unique(train["user_id"].to_numpy(), return_inverse=True)
    item_ids, i = np.unique(train["movie_id"].to_numpy(), return_inverse=True)
    x = np.zeros((len(user_ids), len(item_ids)), dtype=np.float32)
    x[u, i] = 1.0
    return user_ids, item_ids, x


def _rows(matrix: np.ndarray, ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `matrix` (aligned with `ids`) for the `wanted` ids that have one."""
    rows = pd.Index(ids).get_indexer(wanted)
    return wanted[rows >= 0], matrix[rows[rows >= 0]]


@dataclass
class Popularity:
    """The most-interacted items of the training part, the same list for everyone."""

    name: str = "popularity"
    candidates: Sequence[dict[str, Any]] = ({},)

    def recommend(
        self, params: dict[str, Any], train: pd.DataFrame, users: np.ndarray, k: int
    ) -> pd.DataFrame:
        counts = train.groupby("movie_id").size()
        item_ids = counts.index.to_numpy(dtype=np.int64)
        users = np.asarray(users, dtype=np.int64)
        factors = Factors(
            users, np.ones((len(users), 1), np.float32),
            item_ids, counts.to_numpy(dtype=np.float32)[:, None],
        )
        return top_n_excluding_seen(factors, train[["user_id", "movie_id"]], k)


@dataclass
class Ease:
    """EASE (Steck 2019): B = I - P / diag(P), P = (XᵀX + λI)⁻¹, diag(B) = 0; scores X B."""

    lambdas: Sequence[float] = (100.0, 300.0, 1000.0, 3000.0)
    name: str = "EASE"

    @property
    def candidates(self) -> list[dict[str, Any]]:
        return [{"lambda": lam} for lam in self.lambdas]

    def recommend(
        self, params: dict[str, Any], train: pd.DataFrame, users: np.ndarray, k: int
    ) -> pd.DataFrame:
        user_ids, item_ids, x = _binary_matrix(train)
        b = ease_weights(x, params["lambda"])
        wanted, rows = _rows(x, user_ids, np.asarray(users, dtype=np.int64))
        # top_n scores user_factors @ item_factors.T, so the items' "factors" are Bᵀ.
        factors = Factors(wanted, rows, item_ids, np.ascontiguousarray(b.T))
        return top_n_excluding_seen(factors, train[["user_id", "movie_id"]], k)


def ials_side(rows: Sequence[tuple[np.ndarray, np.ndarray]], other: np.ndarray, unobserved: float,
              reg: float, reading: str) -> np.ndarray:
    """One iALS half-step: each row (its observed columns, their summed signals) solved with the
    served user step's equations (batch.foldin.fold_in_rendle), the other side O held fixed."""
    shared = gram(other)
    out = np.zeros((len(rows), other.shape[1]))
    for r, (observed, signals) in enumerate(rows):
        out[r] = fold_in_rendle(other[observed], signals, shared, len(other),
                                unobserved=unobserved, reg=reg, reading=reading)
    return out


def production_pairs(ratings: pd.DataFrame, neutral: float = RATING_NEUTRAL) -> pd.DataFrame:
    """user_id, movie_id, strength: the production rating signal summed per pair, as
    `batch.als.model.interaction_strengths` derives it (`recsys.domain.events.rating_signal`),
    pairs that sum to nothing dropped; `neutral` another neutral star value (a lever)."""
    signal = ratings.assign(strength=(ratings["rating"] - neutral) * RATING_SCALE)
    summed = signal.groupby(["user_id", "movie_id"], as_index=False)["strength"].sum()
    return summed[summed["strength"] != 0]


@dataclass
class Ials:
    """iALS with the regularisation of Rendle et al. 2021 ("Revisiting the Performance of iALS on
    Item Recommendation Benchmarks"): the unobserved weight α₀ on every pair, and λ scaled by
    (frequency + α₀ · the other side's size) (their exponent 1), mostly a constant ridge at their
    tuned values. Both half-steps are the served user step's equations (`ials_side`); Spark's
    ALS cannot express that penalty (its own is λ · frequency), so this numpy reference measures
    what training the items with it too would add to ours (Spark's items, Rendle's user step).

    The production signal read either way the served user step can read it (batch.foldin
    .read_signals), chosen on validation like the rest: IMPLICIT (the paper's: every rated pair
    an observed 1 of weight 1) or SIGNED (weight: the stars from neutral; below neutral an
    observed 0). Ranked with the popularity prior like ours. Trained in numpy, both sides
    Rendle's step: a baseline, not served (ours keeps Spark's item step)."""

    grid: Sequence[dict[str, Any]] = tuple(
        {"signal": signal, "unobserved": a0, "reg": lam, "popularity_boost": boost}
        for signal in (IMPLICIT, SIGNED)
        for a0, lam in ((1.0, 0.003), (1.0, 0.01), (2.0, 0.005), (3.0, 0.001), (3.0, 0.003))
        for boost in (0.0, 0.2)
    )
    rank: int = 64
    epochs: int = 16
    name: str = "iALS, Rendle et al. 2021 regularisation (numpy)"
    _fits: dict[Any, Factors] = field(default_factory=dict, repr=False)

    @property
    def candidates(self) -> Sequence[dict[str, Any]]:
        return self.grid

    def fit(self, train: pd.DataFrame, signal: str, unobserved: float, reg: float) -> Factors:
        key = (*_part_key(train), signal, unobserved, reg)
        if key in self._fits:
            return self._fits[key]
        pairs = production_pairs(train)
        user_ids, u = np.unique(pairs["user_id"].to_numpy(), return_inverse=True)
        item_ids, i = np.unique(pairs["movie_id"].to_numpy(), return_inverse=True)
        coded = pd.DataFrame({"u": u, "i": i, "s": pairs["strength"].to_numpy()})

        def rows(key: str, column: str) -> list[tuple[np.ndarray, np.ndarray]]:
            return [(g[column].to_numpy(), g["s"].to_numpy()) for _, g in coded.groupby(key)]

        by_user, by_item = rows("u", "i"), rows("i", "u")
        rng = np.random.default_rng(SEED)
        scale = 0.1 / np.sqrt(self.rank)
        w = rng.normal(0.0, scale, (len(user_ids), self.rank))
        h = rng.normal(0.0, scale, (len(item_ids), self.rank))
        for _ in range(self.epochs):
            w = ials_side(by_user, h, unobserved, reg, signal)
            h = ials_side(by_item, w, unobserved, reg, signal)
        self._fits = {key: Factors(user_ids.astype(np.int64), w.astype(np.float32),
                                   item_ids.astype(np.int64), h.astype(np.float32))}
        return self._fits[key]

    def recommend(
        self, params: dict[str, Any], train: pd.DataFrame, users: np.ndarray, k: int
    ) -> pd.DataFrame:
        factors = self.fit(train, params["signal"], params["unobserved"], params["reg"])
        wanted, rows = _rows(factors.user_factors, factors.user_ids, np.asarray(users, dtype=np.int64))
        counts = train.groupby("movie_id").size().reindex(factors.item_ids, fill_value=0).to_numpy()
        return top_n_excluding_seen(
            replace(factors, user_ids=wanted, user_factors=rows), train[["user_id", "movie_id"]], k,
            popularity=counts, boost=params["popularity_boost"],
        )


def _part_key(train: pd.DataFrame) -> tuple[int, int]:
    """A key for one training part's cached derivations (its fits, co-visits, latest likes)."""
    return len(train), int(pd.util.hash_pandas_object(train, index=False).sum())


# (strength pairs user_id, movie_id, strength; the ratings they came from) -> new pairs
Reweight = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]


@dataclass
class SparkAls:
    """Ours, as served: production signal -> Spark implicit ALS -> fold-in -> top k, ranked with
    the model's popularity prior (recsys.domain.popularity, the same two steps as retrieval).

    A candidate is AlsParams fields; settings that differ only in the prior share one fit. For
    measuring a lever only: `reweight` changes the strengths before both the fit and the
    fold-in (as a change of the production signal would).
    """

    spark: Any
    grid: Sequence[dict[str, Any]]
    name: str = "recsys ALS"
    last_fit_seconds: float = 0.0  # Spark fit + factor collection, the latest fit
    last_covisit_seconds: float = 0.0  # co-visit counting in Spark + collection, the latest
    reweight: Reweight | None = None
    _fits: dict[Any, tuple[pd.DataFrame, Factors]] = field(default_factory=dict, repr=False)
    _folded: dict[Any, tuple[Factors, Factors]] = field(default_factory=dict, repr=False)
    _covisits: dict[Any, pd.DataFrame] = field(default_factory=dict, repr=False)
    _latest: dict[Any, dict[int, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def candidates(self) -> Sequence[dict[str, Any]]:
        return self.grid

    def fit(self, train: pd.DataFrame, als: AlsParams) -> tuple[pd.DataFrame, Factors]:
        """The strengths and factors of `als` on `train` (the last training part's fits cached)."""
        from batch.als.model import collect_factors, fit_implicit, interaction_strengths, to_pandas

        # Only Spark's settings make a fit: the user step and the prior reuse it.
        key = (*_part_key(train), als.rank, als.alpha, als.reg_param, als.max_iter, als.seed)
        if key in self._fits:
            return self._fits[key]
        self._fits.clear()  # one training part at a time: its fits are the ones asked again
        events = self.spark.createDataFrame(as_events(train))
        strengths = interaction_strengths(events)
        if self.reweight is not None:
            changed = self.reweight(to_pandas(strengths), train)
            strengths = self.spark.createDataFrame(changed.astype(
                {"user_id": "int32", "movie_id": "int32", "strength": "float32"}))
        strengths = strengths.cache()
        pairs = to_pandas(strengths)
        started = time.perf_counter()
        factors = collect_factors(fit_implicit(strengths, als))
        self.last_fit_seconds = time.perf_counter() - started
        strengths.unpersist()
        self._fits[key] = (pairs, factors)
        return pairs, factors

    def covisits(self, train: pd.DataFrame) -> pd.DataFrame:
        """The co-visits of `train` (batch.als.covisit, the nightly job's), the last part's cached."""
        from batch.als.covisit import covisits
        from batch.als.model import to_pandas

        key = _part_key(train)
        if key not in self._covisits:
            started = time.perf_counter()
            self._covisits = {key: to_pandas(covisits(self.spark.createDataFrame(as_events(train))))}
            self.last_covisit_seconds = time.perf_counter() - started
        return self._covisits[key]

    def latest_liked(self, pairs: pd.DataFrame, train: pd.DataFrame) -> dict[int, np.ndarray]:
        """Each user's latest liked movies in `train` (batch.als.evaluate.latest_liked), the
        last part's cached: every candidate of a grid asks for the same ones."""
        from batch.als.evaluate import latest_liked

        key = _part_key(train)
        if key not in self._latest:
            self._latest = {key: latest_liked(pairs, train)}
        return self._latest[key]

    def recommend(
        self, params: dict[str, Any], train: pd.DataFrame, users: np.ndarray, k: int
    ) -> pd.DataFrame:
        from batch.als.evaluate import (
            fold_in_users,
            lean_to_recent,
            popularity_counts,
            rerank_with_covisits,
        )

        als = AlsParams.from_dict({**AlsParams().as_dict(), **params})
        pairs, factors = self.fit(train, als)
        # The prior, the query's lean and co-visitation only re-rank: one fold-in per user step and fit.
        key = (als.user_step, len(users), int(pd.util.hash_array(np.sort(users)).sum()))
        folded = self._folded.get(key)
        if folded is None or folded[0] is not factors:
            self._folded.clear()
            folded = (factors, fold_in_users(
                factors.item_ids, factors.item_factors, pairs, als.user_step, users=users))
            self._folded[key] = folded
        users_f = folded[1]
        recent = self.latest_liked(pairs, train) if als.recent_weight or als.sequence_weight else {}
        if als.recent_weight:
            users_f = lean_to_recent(users_f, recent, als.recent_weight)
        seen = train[["user_id", "movie_id"]]
        popularity = popularity_counts(factors.item_ids, pairs)
        fetch = depth(k, als.popularity_boost, als.sequence_weight)
        candidates = top_n_excluding_seen(
            users_f, seen, fetch, popularity=popularity, boost=als.popularity_boost)
        if not als.sequence_weight:
            return candidates[candidates["rank"] <= k]
        return rerank_with_covisits(candidates, self.covisits(train), recent, als.sequence_weight, k)


def item_knn(x: np.ndarray, neighbours: int = 200) -> np.ndarray:
    """Cosine item-item similarities of a binary user x item matrix, each item's top neighbours."""
    co = x.T @ x
    norms = np.sqrt(np.diag(co)) + 1e-9
    sim = co / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    if neighbours < sim.shape[0] - 1:
        cut = -np.partition(-sim, neighbours - 1, axis=1)[:, neighbours - 1][:, None]
        sim = np.where(sim >= cut, sim, 0.0)
    return sim


def ease_weights(x: np.ndarray, lam: float) -> np.ndarray:
    """EASE's item-item matrix B (see `Ease`)."""
    co = x.T @ x
    co[np.diag_indices_from(co)] += lam
    p = np.linalg.inv(co)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def _z(v: np.ndarray) -> np.ndarray:
    return (v - v.mean(axis=1, keepdims=True)) / (v.std(axis=1, keepdims=True) + 1e-9)


@dataclass
class SecondStage:
    """What a second stage could add: the served model's RERANK_DEPTH candidates (with its
    prior) re-ranked by its score plus `weight` times an item-item score (both z-scored per user
    over the candidates); the item-item score a sparse cosine kNN, or EASE itself (an upper
    bound for any item-item stage). Validation only (`--levers`)."""

    als: SparkAls
    ease_lambda: float
    name: str = "second stage"
    candidates: Sequence[dict[str, Any]] = tuple(
        {"stage": stage, "weight": weight} for stage in ("item-kNN", "EASE") for weight in (0.5, 1.0, 2.0)
    )
    _item_item: dict[Any, np.ndarray] = field(default_factory=dict, repr=False)

    def recommend(
        self, params: dict[str, Any], train: pd.DataFrame, users: np.ndarray, k: int
    ) -> pd.DataFrame:
        from batch.als.evaluate import fold_in_users, popularity_counts

        als = AlsParams.from_dict({**AlsParams().as_dict(), **self.als.grid[0]})
        pairs, factors = self.als.fit(train, als)
        users_f = fold_in_users(
            factors.item_ids, factors.item_factors, pairs, als.user_step, users=users
        )
        user_ids, item_ids, x = _binary_matrix(train)
        x = x[:, pd.Index(item_ids).get_indexer(factors.item_ids)]  # the model's items, in its order
        key = (params["stage"], len(train), factors.item_ids.tobytes())
        if key not in self._item_item:
            self._item_item = {key: item_knn(x) if params["stage"] == "item-kNN"
                               else ease_weights(x, self.ease_lambda)}
        rows = pd.Index(user_ids).get_indexer(users_f.user_ids)
        prior_w = prior(popularity_counts(factors.item_ids, pairs), als.popularity_boost)
        model = (users_f.user_factors @ factors.item_factors.T) * prior_w
        item_item = x[rows] @ self._item_item[key]
        seen = x[rows] > 0
        model[seen] = -np.inf
        top = np.argpartition(-model, RERANK_DEPTH, axis=1)[:, :RERANK_DEPTH]
        blended = _z(np.take_along_axis(model, top, 1)) + params["weight"] * _z(
            np.take_along_axis(item_item, top, 1))
        best = np.take_along_axis(top, np.argsort(-blended, axis=1)[:, :k], 1)
        return pd.DataFrame({
            "user_id": np.repeat(users_f.user_ids, k), "movie_id": factors.item_ids[best].ravel(),
            "rank": np.tile(np.arange(1, k + 1), len(users_f.user_ids)), "score": 0.0,
        })


def as_events(ratings: pd.DataFrame) -> pd.DataFrame:
    """MovieLens ratings as our `rate` events."""
    return ratings.assign(
        event_type="rate",
        occurred_at=pd.to_datetime(ratings["timestamp"], unit="s", utc=True),
    )[["user_id", "movie_id", "event_type", "rating", "occurred_at"]]


# -- levers: changes to the served model, each measured alone on validation ---------------------

SECONDS_PER_DAY = 86_400.0


def decay_weights(users: np.ndarray, timestamps: np.ndarray, half_life_days: float) -> np.ndarray:
    """exp(-ln 2 * age / half-life), the age of each signal counted back from the same user's
    latest one (a user who pauses keeps their taste; only what they did before fades)."""
    times = np.asarray(timestamps, dtype=np.float64)
    latest = pd.Series(times).groupby(np.asarray(users)).transform("max").to_numpy()
    age_days = (latest - times) / SECONDS_PER_DAY
    return np.asarray(np.exp(-np.log(2.0) * age_days / half_life_days))


def time_decay(half_life_days: float) -> Reweight:
    """Each pair's strength decayed by the age of its latest event (`decay_weights`)."""

    def reweight(pairs: pd.DataFrame, ratings: pd.DataFrame) -> pd.DataFrame:
        last = ratings.groupby(["user_id", "movie_id"], as_index=False)["timestamp"].max()
        out = pairs.merge(last, on=["user_id", "movie_id"], how="left")
        weights = decay_weights(out["user_id"].to_numpy(), out["timestamp"].to_numpy(), half_life_days)
        return out.assign(strength=out["strength"] * weights)[["user_id", "movie_id", "strength"]]

    return reweight


def rating_neutral(neutral: float) -> Reweight:
    """The rating signal derived with another neutral star value (RATING_NEUTRAL): 0 makes
    every rating a positive signal, 3 makes 3 stars and below a "not for me"."""

    def reweight(pairs: pd.DataFrame, ratings: pd.DataFrame) -> pd.DataFrame:
        return production_pairs(ratings, neutral)

    return reweight


def negatives_as(strength: float) -> Reweight:
    """Pairs of negative strength (a low rating, a dislike) replaced by `strength`."""

    def reweight(pairs: pd.DataFrame, ratings: pd.DataFrame) -> pd.DataFrame:
        return pairs.assign(strength=pairs["strength"].where(pairs["strength"] > 0, strength))

    return reweight


@dataclass(frozen=True)
class Lever:
    name: str
    params: dict[str, Any] = field(default_factory=dict)  # AlsParams changes
    reweight: Reweight | None = None


LEVERS = [
    Lever("served defaults"),
    Lever("time decay, half-life 90 days", reweight=time_decay(90.0)),
    Lever("time decay, half-life 365 days", reweight=time_decay(365.0)),
    Lever("rank 128", {"rank": 128}),
    Lever("low ratings and dislikes as weak positives (+1)", reweight=negatives_as(1.0)),
    Lever("rating neutral 0: every rating a positive signal", reweight=rating_neutral(0.0)),
    Lever("rating neutral 3: 3 stars and below negative", reweight=rating_neutral(3.0)),
    Lever("no popularity prior", {"popularity_boost": 0.0}),
    Lever("Rendle et al.'s user step, signed, unobserved 0.3, penalty 0.01",
          {"unobserved_weight": 0.3, "user_reg": 0.01, "signal_reading": SIGNED}),
    Lever("Rendle et al.'s user step, implicit, unobserved 0.3, penalty 0.01",
          {"unobserved_weight": 0.3, "user_reg": 0.01, "signal_reading": IMPLICIT}),
]


def measure_levers(spark: Any, train: pd.DataFrame, split: Split,
                   levers: Sequence[Lever] = LEVERS) -> list[tuple[Lever, float, float]]:
    """Each lever's validation NDCG@10 and fit seconds, the served defaults otherwise."""
    out = []
    for lever in levers:
        model = SparkAls(spark, [{**SERVED[0], **lever.params}], reweight=lever.reweight)
        selection = select(model, train, split)
        out.append((lever, selection.validation[0][1], model.last_fit_seconds))
        print(f"  lever {lever.name}: validation ndcg@10={out[-1][1]:.4f}", flush=True)
    return out


def lever_lines(measured: list[tuple[Lever, float, float]]) -> list[str]:
    lines = ["Levers on top of the served defaults, validation NDCG@10 (the test part is not "
             "used; a lever goes into the served model only if it wins on both protocols and "
             "the served path can apply it):", "",
             "| lever | validation NDCG@10 | ALS fit, s |", "|---|---:|---:|"]
    lines += [f"| {lever.name} | {score:.4f} | {'-' if np.isnan(seconds) else f'{seconds:.1f}'} |"
              for lever, score, seconds in measured]
    lines += ["", "The second-stage rows (`SecondStage`) re-rank the served model's "
              f"{RERANK_DEPTH} candidates by its score plus the weight times an item-item score "
              "(z-scored per user): a cosine item-kNN (200 neighbours), or EASE with its validation "
              "lambda, an upper bound for any item-item stage."]
    return [*lines, ""]


# -- tuning and scoring -------------------------------------------------------------------------


def _label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


@dataclass(frozen=True)
class Selection:
    params: dict[str, Any]
    validation: list[tuple[dict[str, Any], float]]  # every candidate's validation NDCG@10


def select(model: Model, train: pd.DataFrame, split: Split, k: int = K) -> Selection:
    """The candidate of `model` with the best NDCG@k on a validation split carved from `train`.

    Only `train` is given: the test part cannot take part in the choice. Ties go to the first.
    """
    fit_part, validation = split(train)
    users = validation["user_id"].unique()
    scored = []
    for params in model.candidates:
        recs = model.recommend(params, fit_part, users, k)
        scored.append((dict(params), metrics.ndcg_at_k(validation, recs, k)))
    best = max(scored, key=lambda s: s[1])[0]  # max keeps the first of equal scores
    return Selection(best, scored)


@dataclass(frozen=True)
class Outcome:
    model: str
    selection: Selection
    metrics: dict[str, float]
    ndcg_per_user: pd.Series


def evaluate(model: Model, train: pd.DataFrame, test: pd.DataFrame, split: Split,
             k: int = K) -> Outcome:
    """Tune on validation inside `train`, refit on all of `train`, score once on `test`."""
    selection = select(model, train, split, k)
    recs = model.recommend(selection.params, train, test["user_id"].unique(), k)
    scores = metrics.ranking_metrics(test, recs, k=k, catalogue_size=int(train["movie_id"].nunique()))
    return Outcome(model.name, selection, scores, metrics.ndcg_per_user(test, recs, k))


def paired_bootstrap(
    ours: pd.Series, theirs: pd.Series, samples: int = BOOTSTRAP_SAMPLES, seed: int = SEED
) -> tuple[float, float, float]:
    """Mean of ours - theirs over users, with a percentile 95 % interval over resampled users."""
    both = pd.concat([ours, theirs], axis=1).fillna(0.0).to_numpy()
    diff = both[:, 0] - both[:, 1]
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


# -- report -------------------------------------------------------------------------------------

COLUMNS = [("ndcg@10", "NDCG@10"), ("precision@10", "P@10"), ("recall@10", "R@10"),
           ("map", "MAP"), ("coverage@10", "coverage")]


def _table(outcomes: Iterable[Outcome], reference: dict[str, dict[str, float]] | None) -> list[str]:
    lines = ["| model | chosen on validation | " + " | ".join(c for _, c in COLUMNS) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]
    for o in outcomes:
        cells = " | ".join(f"{o.metrics[key]:.4f}" for key, _ in COLUMNS)
        lines.append(f"| {o.model} | {_label(o.selection.params)} | {cells} |")
    for name, row in (reference or {}).items():
        cells = " | ".join(f"{row[key]:.4f}" if key in row else "-" for key, _ in COLUMNS)
        lines.append(f"| {name} (their published row) | - | {cells} |")
    return lines


def report(title: str, intro: str, outcomes: list[Outcome], fit_seconds: dict[str, float],
           reference: dict[str, dict[str, float]] | None = None,
           levers: list[tuple[Lever, float, float]] | None = None) -> list[str]:
    ours = [o for o in outcomes if o.model.startswith("recsys")]
    baselines = [o for o in outcomes if not o.model.startswith("recsys")]
    lines = [f"## {title}", "", intro, "", *_table(outcomes, reference), ""]
    lines += ["NDCG@10 of ours minus each baseline, paired bootstrap over test users "
              f"({BOOTSTRAP_SAMPLES} resamples, 95 % interval):", ""]
    for mine in ours:
        for b in baselines:
            mean, low, high = paired_bootstrap(mine.ndcg_per_user, b.ndcg_per_user)
            lines.append(f"- {mine.model} vs {b.model}: {mean:+.4f} [{low:+.4f}, {high:+.4f}]")
    lines += ["", f"Validation NDCG@10, the {SHOWN} best candidates of each model (all of them in "
              "the CSV written beside the report):", ""]
    for o in outcomes:
        if o.model == ORDERLESS:
            continue  # its candidates are the first model's
        best = sorted(o.selection.validation, key=lambda s: -s[1])
        lines += [f"- {o.model} {_label(params)}: {score:.4f}" for params, score in best[:SHOWN]]
        if len(best) > SHOWN:
            lines.append(f"- ({len(best) - SHOWN} more {o.model} candidates, down to {best[-1][1]:.4f})")
    times = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in fit_seconds.items())
    lines += ["", f"Spark ALS fit + factor collection of the chosen settings on the whole training "
              f"part: {times} ({os.cpu_count()} cores).", ""]
    if levers:
        lines += lever_lines(levers)
    return lines


# -- main ---------------------------------------------------------------------------------------

# The same grid for both protocols: Spark's confidence and regularisation, and the user step:
# Spark's own, or Rendle et al.'s with its reading, unobserved weight and penalty (no refit);
# then how the query is served: the popularity prior, and how far it leans to the movies liked
# last (recsys.domain.recency; the prior is weighed again with it, since both re-rank). Spark's
# solver can stop on a matrix that is not positive definite with larger alpha or reg (seen at
# alpha 3 on ml-100k), so the grid stays where every setting fits.
SPARK_SETTINGS = ((0.2, 0.1), (0.5, 0.4), (1.0, 0.4))
SERVING_SETTINGS = tuple(
    {"popularity_boost": boost, "recent_weight": lean, "sequence_weight": covisit}
    for boost in (0.0, AlsParams().popularity_boost)
    for lean in (0.0, 0.5, 1.0)
    for covisit in (0.0, 0.5, 1.0)
)
ALS_GRID = [
    {"alpha": alpha, "reg_param": reg, "unobserved_weight": None, **serving}
    for alpha, reg in SPARK_SETTINGS
    for serving in SERVING_SETTINGS
] + [
    {"alpha": alpha, "reg_param": reg, "signal_reading": reading, "unobserved_weight": a0,
     "user_reg": lam, **serving}
    for alpha, reg in SPARK_SETTINGS
    for reading in (SIGNED, IMPLICIT)
    for a0 in (0.1, 0.3, 1.0)
    for lam in (0.003, 0.01, 0.03)
    for serving in SERVING_SETTINGS
]
ORDERLESS = "recsys ALS, without the short-term parts"
SHOWN = 12  # validation scores listed per model in the report
SERVED = [{name: getattr(AlsParams(), name) for name in (
    "alpha", "reg_param", "unobserved_weight", "popularity_boost", "recent_weight")}]


def run_protocol(
    name: str, data: pd.DataFrame, split: Split, spark: Any, grid: Sequence[dict[str, Any]],
    levers: bool = False,
) -> tuple[list[Outcome], dict[str, float], list[tuple[Lever, float, float]]]:
    train, test = split(data)
    print(f"{name}: {len(data)} ratings, train {len(train)}, test {len(test)}", flush=True)
    als = SparkAls(spark, grid)
    # The same grid without the short-term parts (recsys.domain.recency): what order adds.
    without = [p for p in grid if not p.get("recent_weight") and not p.get("sequence_weight")]
    orderless = SparkAls(spark, without, name=ORDERLESS)
    served = SparkAls(spark, SERVED, name="recsys ALS, served defaults")
    outcomes = []
    for model in (als, orderless, served, Popularity(), Ease(), Ials()):
        started = time.perf_counter()
        outcomes.append(evaluate(model, train, test, split))
        o = outcomes[-1]
        print(f"  {o.model}: {_label(o.selection.params)} ndcg@10={o.metrics['ndcg@10']:.4f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    measured = measure_levers(spark, train, split) if levers else []
    if levers:
        ease = next(o for o in outcomes if o.model == "EASE").selection.params["lambda"]
        stage = select(SecondStage(SparkAls(spark, SERVED), ease), train, split)
        for params, score in stage.validation:
            label = f"second stage: {params['stage']}, weight {params['weight']}"
            measured.append((Lever(label), score, float("nan")))
            print(f"  lever {label}: validation ndcg@10={score:.4f}", flush=True)
    seconds = {m.name: m.last_fit_seconds for m in (als, orderless, served)}
    if outcomes[0].selection.params.get("sequence_weight"):  # timed on the whole training part
        seconds[f"{als.name}'s co-visit counting"] = als.last_covisit_seconds
    return outcomes, seconds, measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--protocol", choices=["ml100k", "temporal", "both"], default="both")
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument("--levers", action="store_true",
                        help="also measure each lever (LEVERS) alone on validation")
    opts = parser.parse_args(argv)

    root = data_dir()
    needed = [root / "ml-100k" / "u.data", root / "ml-latest-small" / "ratings.csv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        message = f"MovieLens not found: {', '.join(missing)} (set MOVIELENS_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            print(message, file=sys.stderr)
            return 1
        print(f"skipped: {message}")
        return 0

    from batch.common.spark import build_session

    defaults = AlsParams()
    lines = ["# Model quality", "", "`bench/quality.py`: every model's settings chosen on a "
             "validation split carved from the training part (the protocol's split applied again "
             "inside it), then refitted on the whole training part and scored once on test. Top "
             "10, items seen in training excluded, every held-out item relevant.", "",
             f"Ours: Spark implicit ALS, rank {defaults.rank}, {defaults.max_iter} iterations, "
             "production event signal (`recsys.domain.events`), user vectors folded in as "
             "published with the model's user step (`batch.foldin`: Spark's own, the default, or "
             "Rendle et al. 2021's with its reading, unobserved weight and penalty; part of the "
             "grid), ranked as the realtime tier serves: the popularity prior re-ranks the "
             f"{RERANK_DEPTH} nearest movies (`recsys.domain.popularity`). The short-term parts "
             "(`recsys.domain.recency`) are in the grid too: the query leaning to the user's "
             "latest liked movies (`recent_weight`), and the candidates re-ranked by co-visitation "
             "with them (`sequence_weight`; co-visits counted by the nightly job's Spark code, "
             "`batch.als.covisit`, on the training part). The row without them is the same grid "
             "restricted to both weights 0.", ""]
    spark = build_session("recsys-quality-bench")
    validations: list[dict[str, Any]] = []

    def keep(protocol: str, outcomes: list[Outcome]) -> None:
        validations.extend(
            {"protocol": protocol, "model": o.model, "candidate": _label(params), "validation_ndcg@10": score}
            for o in outcomes if o.model != ORDERLESS for params, score in o.selection.validation
        )

    try:
        if opts.protocol in ("ml100k", "both"):
            outcomes, seconds, measured = run_protocol(
                "ml-100k", load_ml100k(root), stratified_split, spark, ALS_GRID, opts.levers)
            keep("ml-100k", outcomes)
            lines += report("MovieLens 100K, Microsoft Recommenders protocol",
                            "75/25 split stratified by user, seed 42 (validation: the same split "
                            "of the 75 %).", outcomes, seconds, REFERENCE, measured)
        if opts.protocol in ("temporal", "both"):
            outcomes, seconds, measured = run_protocol(
                "ml-latest-small", load_latest_small(root), temporal_split, spark, ALS_GRID,
                opts.levers)
            keep("temporal", outcomes)
            lines += report("MovieLens latest-small, temporal protocol",
                            "Each user's last 20 % of ratings by time held out (validation: the "
                            "last 20 % of each user's remaining ratings).", outcomes, seconds,
                            levers=measured)
    finally:
        spark.stop()
    text = "\n".join(lines)
    print(text)
    if opts.out:
        opts.out.write_text(text)
        pd.DataFrame(validations).to_csv(opts.out.with_suffix(".validation.csv"), index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
