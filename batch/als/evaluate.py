"""Holdout evaluation of a set of item factors, the same way for the new and the live model.

User vectors are folded in (`batch.foldin`, the speed layer's exact ALS user step) from each
user's training pairs onto the model's item factors; then the top k, excluding the training
pairs, is scored against the held-out pairs with `batch.als.metrics`. Evaluating both models
through the same procedure on the same holdout makes the gate's comparison fair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from batch import foldin
from batch.als import metrics
from batch.als.model import Factors, top_n_excluding_seen


def fold_in_users(
    item_ids: np.ndarray,
    item_factors: np.ndarray,
    strengths: pd.DataFrame,
    alpha: float,
    reg_param: float,
    users: np.ndarray | None = None,
) -> Factors:
    """User vectors for the users of `strengths` (user_id, movie_id, strength)."""
    index = pd.Index(item_ids)
    rows = index.get_indexer(strengths["movie_id"].to_numpy())
    known = strengths.assign(row=rows)[rows >= 0]
    if users is not None:
        known = known[known["user_id"].isin(users)]
    g = foldin.gram(item_factors)
    user_ids: list[int] = []
    vectors: list[np.ndarray] = []
    for user_id, group in known.groupby("user_id", sort=True):
        y_u = item_factors[group["row"].to_numpy()]
        vectors.append(
            foldin.fold_in(y_u, group["strength"].to_numpy(), g, alpha=alpha, reg_param=reg_param)
        )
        user_ids.append(int(user_id))
    rank = item_factors.shape[1]
    mat = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, rank), np.float32)
    return Factors(np.array(user_ids, dtype=np.int64), mat, np.asarray(item_ids), item_factors)


def evaluate_items(
    item_ids: np.ndarray,
    item_factors: np.ndarray,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    alpha: float,
    reg_param: float,
    k: int = 10,
) -> dict[str, float]:
    """Ranking metrics at k of the item factors on the holdout (see the module docstring)."""
    if holdout.empty:
        return {}
    users = holdout["user_id"].unique()
    factors = fold_in_users(item_ids, item_factors, train, alpha, reg_param, users=users)
    recs = top_n_excluding_seen(factors, train[["user_id", "movie_id"]], k)
    out = metrics.ranking_metrics(holdout, recs, k=k, catalogue_size=len(item_ids))
    out["holdout_users"] = float(len(users))
    out["holdout_pairs"] = float(len(holdout))
    return out


def evaluate_popularity(
    item_ids: np.ndarray, train: pd.DataFrame, holdout: pd.DataFrame, k: int = 10
) -> dict[str, float]:
    """Ranking metrics at k of the popularity floor: each item's count of positive training pairs.

    The same top k for everyone (seen items excluded), over the model's items, on the same
    holdout as `evaluate_items`.
    """
    if holdout.empty:
        return {}
    positive = train[train["strength"] > 0]
    counts = positive.groupby("movie_id").size().reindex(item_ids, fill_value=0)
    users = np.sort(holdout["user_id"].unique()).astype(np.int64)
    factors = Factors(
        users,
        np.ones((len(users), 1), np.float32),
        np.asarray(item_ids),
        counts.to_numpy(dtype=np.float32)[:, None],
    )
    recs = top_n_excluding_seen(factors, train[["user_id", "movie_id"]], k)
    return metrics.ranking_metrics(holdout, recs, k=k, catalogue_size=len(item_ids))


def gate(
    new_ndcg: float, popularity_ndcg: float, live_ndcg: float | None, tolerance: float
) -> str:
    """`candidate` or `rejected`: a new model must beat popularity outright, and must not fall
    below the live model by more than `tolerance` (noise between two comparable models)."""
    if new_ndcg <= popularity_ndcg:
        return "rejected"
    if live_ndcg is not None and new_ndcg < live_ndcg - tolerance:
        return "rejected"
    return "candidate"
