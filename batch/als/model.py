"""ALS transforms: events -> implicit strengths -> Spark ALS factors -> top-N lists.

Everything here is a pure function of its inputs (DataFrames, arrays, params); the jobs
(`batch.als.train`, `bench/quality.py`) do the extracting and loading around them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from batch.foldin import UserStep
from recsys.domain.events import (
    DEFAULT_ALPHA,
    DEFAULT_REG_PARAM,
    DEFAULT_SIGNAL_READING,
    DEFAULT_USER_REG,
    EVENT_SIGNAL,
    RATE,
    RATING_NEUTRAL,
    RATING_SCALE,
)
from recsys.domain.popularity import DEFAULT_POPULARITY_BOOST, depth, prior
from recsys.domain.recency import DEFAULT_RECENT_WEIGHT, DEFAULT_SEQUENCE_WEIGHT
from recsys.domain.vectors import EMBEDDING_DIM


@dataclass(frozen=True)
class AlsParams:
    """Hyper-parameters of the implicit ALS model (alpha, reg_param: see recsys.domain.events),
    and of the step its users are folded in with (`user_step`, batch.foldin.UserStep)."""

    rank: int = 64
    reg_param: float = DEFAULT_REG_PARAM
    alpha: float = DEFAULT_ALPHA
    # Rendle et al.'s user step when set (batch.foldin.UserStep); None, the default, folds users
    # in with Spark's own step (and models stored before the setting existed read back that way).
    unobserved_weight: float | None = None
    user_reg: float = DEFAULT_USER_REG
    signal_reading: str = DEFAULT_SIGNAL_READING
    # The served ranking's popularity prior (recsys.domain.popularity); 0 ranks by score alone.
    popularity_boost: float = DEFAULT_POPULARITY_BOOST
    # How far the realtime query leans to the movies liked last (recsys.domain.recency); 0 not at all.
    recent_weight: float = DEFAULT_RECENT_WEIGHT
    # How much co-visitation with the movies liked last re-ranks it (recsys.domain.recency); 0 not at all.
    sequence_weight: float = DEFAULT_SEQUENCE_WEIGHT
    max_iter: int = 15
    seed: int = 42
    # Spark ALS user/item blocks; a few suffice on one machine (Spark's default is 10).
    num_blocks: int = 2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AlsParams:
        # Keys this version does not know (popularity_exponent, rating_rank and others stored by older
        # versions) are dropped, so every stored model's params stay readable.
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        known.setdefault("unobserved_weight", None)
        return cls(**known)

    @property
    def user_step(self) -> UserStep:
        return UserStep.of(self.as_dict())


def weight_column(event_type: Column, rating: Column) -> Column:
    """The signed signal of one event as a Spark expression: `recsys.domain.events.event_signal`."""
    stars = rating.cast("double")
    rate = F.when(
        stars.isNotNull(), (stars - F.lit(RATING_NEUTRAL)) * F.lit(RATING_SCALE)
    ).otherwise(F.lit(0.0))
    expr = F.when(event_type == RATE, rate)
    for name, value in EVENT_SIGNAL.items():
        expr = expr.when(event_type == name, F.lit(value))
    return expr.otherwise(F.lit(0.0))


def interaction_strengths(events: DataFrame) -> DataFrame:
    """Events (user_id, movie_id, event_type, rating) -> one signed strength per (user, movie).

    Strengths of repeated events add up; pairs whose total is exactly 0 carry no signal and are
    dropped.
    """
    return (
        events.withColumn("w", weight_column(F.col("event_type"), F.col("rating")))
        .groupBy("user_id", "movie_id")
        .agg(F.sum("w").alias("strength"))
        .where(F.col("strength") != 0)
        .select(
            F.col("user_id").cast("int").alias("user_id"),
            F.col("movie_id").cast("int").alias("movie_id"),
            F.col("strength").cast("float").alias("strength"),
        )
    )


def fit_implicit(strengths: DataFrame, params: AlsParams) -> ALSModel:
    """Implicit-feedback ALS (preference = strength > 0, confidence = 1 + alpha * |strength|)."""
    als = ALS(
        maxIter=params.max_iter,
        userCol="user_id",
        itemCol="movie_id",
        seed=params.seed,
        numUserBlocks=params.num_blocks,
        numItemBlocks=params.num_blocks,
        coldStartStrategy="drop",
        rank=params.rank,
        regParam=params.reg_param,
        alpha=params.alpha,
        implicitPrefs=True,
        ratingCol="strength",
    )
    return als.fit(strengths)


@dataclass(frozen=True)
class Factors:
    """A model's factors pulled to the driver, rows aligned with the id arrays."""

    user_ids: np.ndarray
    user_factors: np.ndarray
    item_ids: np.ndarray
    item_factors: np.ndarray


def to_pandas(df: DataFrame) -> pd.DataFrame:
    """df.toPandas(), typed: pyspark annotates it with a protocol mypy cannot resolve."""
    return cast(pd.DataFrame, df.toPandas())


def _to_numpy(df: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    pdf = to_pandas(df.orderBy("id"))
    ids = pdf["id"].to_numpy(dtype=np.int64)
    mat = np.array(pdf["features"].tolist(), dtype=np.float32).reshape(len(ids), -1)
    return ids, mat


def collect_factors(model: ALSModel) -> Factors:
    user_ids, user_f = _to_numpy(model.userFactors)
    item_ids, item_f = _to_numpy(model.itemFactors)
    return Factors(user_ids, user_f, item_ids, item_f)


def pad(matrix: np.ndarray, dim: int = EMBEDDING_DIM) -> np.ndarray:
    """Zero-pad rows to `dim` columns (inner products are unchanged)."""
    if matrix.shape[1] > dim:
        raise ValueError(f"rank {matrix.shape[1]} exceeds the embedding size {dim}")
    out = np.zeros((matrix.shape[0], dim), dtype=np.float32)
    out[:, : matrix.shape[1]] = matrix
    return out


def top_n_excluding_seen(
    factors: Factors,
    seen: pd.DataFrame,
    n: int,
    users: np.ndarray | None = None,
    popularity: np.ndarray | None = None,
    boost: float = 0.0,
    batch_size: int = 2048,
) -> pd.DataFrame:
    """Top n items per user by inner product, never an item the user has already seen.

    `seen` has columns user_id, movie_id. With `popularity` (aligned with `factors.item_ids`)
    and a `boost`, the served ranking's popularity prior re-ranks the nearest items
    (recsys.domain.popularity), as retrieval does. Returns user_id, rank (1-based), movie_id,
    score (the ranking score).
    """
    uid_index = pd.Index(factors.user_ids)
    iid_index = pd.Index(factors.item_ids)
    wanted = factors.user_ids if users is None else np.asarray(users, dtype=np.int64)
    wanted = wanted[uid_index.get_indexer(wanted) >= 0]
    seen_u = uid_index.get_indexer(seen["user_id"].to_numpy())
    seen_i = iid_index.get_indexer(seen["movie_id"].to_numpy())
    keep = (seen_u >= 0) & (seen_i >= 0)
    seen_u, seen_i = seen_u[keep], seen_i[keep]
    n_items = len(factors.item_ids)
    n_eff = min(n, n_items)
    if popularity is None:
        boost = 0.0
    weights = prior(popularity, boost).astype(np.float32) if popularity is not None and boost else None
    n_fetch = min(depth(n, boost), n_items)

    rows_u, rows_r, rows_i, rows_s = [], [], [], []
    rows = uid_index.get_indexer(wanted)
    for start in range(0, len(rows), batch_size):
        block = rows[start : start + batch_size]
        scores = factors.user_factors[block] @ factors.item_factors.T
        # Mask what each user in the block has seen.
        pos = np.searchsorted(block, seen_u) if np.all(np.diff(block) >= 0) else None
        if pos is not None:
            in_block = (pos < len(block)) & (block[np.minimum(pos, len(block) - 1)] == seen_u)
            scores[pos[in_block], seen_i[in_block]] = -np.inf
        else:
            local = pd.Index(block).get_indexer(seen_u)
            m = local >= 0
            scores[local[m], seen_i[m]] = -np.inf
        if n_fetch < n_items:
            part = np.argpartition(-scores, n_fetch - 1, axis=1)[:, :n_fetch]
        else:
            part = np.tile(np.arange(n_items), (len(block), 1))
        part_scores = np.take_along_axis(scores, part, axis=1)
        if weights is not None:
            part_scores = part_scores * weights[part]
        order = np.argsort(-part_scores, axis=1, kind="stable")[:, :n_eff]
        best = np.take_along_axis(part, order, axis=1)
        best_scores = np.take_along_axis(part_scores, order, axis=1)
        valid = np.isfinite(best_scores)
        ranks = np.cumsum(valid, axis=1)
        rows_u.append(np.repeat(factors.user_ids[block], n_eff)[valid.ravel()])
        rows_r.append(ranks.ravel()[valid.ravel()])
        rows_i.append(factors.item_ids[best].ravel()[valid.ravel()])
        rows_s.append(best_scores.ravel()[valid.ravel()])
    if not rows_u:
        return pd.DataFrame({"user_id": [], "rank": [], "movie_id": [], "score": []})
    return pd.DataFrame(
        {
            "user_id": np.concatenate(rows_u).astype(np.int64),
            "rank": np.concatenate(rows_r).astype(np.int32),
            "movie_id": np.concatenate(rows_i).astype(np.int64),
            "score": np.concatenate(rows_s).astype(np.float32),
        }
    )
