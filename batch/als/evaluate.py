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
from recsys.domain.recency import RECENT_MOVIES, SEQUENCE_CONTEXT, blend, query_vector


def fold_in_users(
    item_ids: np.ndarray,
    item_factors: np.ndarray,
    strengths: pd.DataFrame,
    step: foldin.UserStep,
    users: np.ndarray | None = None,
) -> Factors:
    """User vectors for the users of `strengths` (user_id, movie_id, strength), folded in
    with the model's `step`."""
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
        vectors.append(step.solve(y_u, group["strength"].to_numpy(), g, len(item_factors)))
        user_ids.append(int(user_id))
    rank = item_factors.shape[1]
    mat = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, rank), np.float32)
    return Factors(np.array(user_ids, dtype=np.int64), mat, np.asarray(item_ids), item_factors)


def latest_liked(
    strengths: pd.DataFrame, events: pd.DataFrame, n: int = RECENT_MOVIES
) -> dict[int, np.ndarray]:
    """Per user, the movie ids of their n latest pairs of positive summed signal, newest first:
    the rows the realtime tier's short-term part reads (recommender_svc.store, _RECENT_SQL).

    `strengths` (user_id, movie_id, strength) are the summed signals, `events` (user_id,
    movie_id, timestamp) the events they were summed from; a pair's time is its latest event."""
    last = events.groupby(["user_id", "movie_id"], as_index=False)["timestamp"].max()
    liked = strengths[strengths["strength"] > 0].merge(last, on=["user_id", "movie_id"])
    liked = liked.sort_values(["user_id", "timestamp", "movie_id"], ascending=[True, False, False])
    top = liked.groupby("user_id", sort=False).head(n)
    return {int(u): g.to_numpy() for u, g in top.groupby("user_id", sort=False)["movie_id"]}


def lean_to_recent(factors: Factors, recent: dict[int, np.ndarray], weight: float) -> Factors:
    """Each user's realtime query (recsys.domain.recency.query_vector) from their fold-in vector
    and the item factors of their `recent` movies (`latest_liked`)."""
    if weight <= 0:
        return factors
    index = pd.Index(factors.item_ids)
    queries = np.empty_like(factors.user_factors)
    for row, user in enumerate(factors.user_ids):
        rows = index.get_indexer(recent.get(int(user), np.empty(0, np.int64)))
        queries[row] = query_vector(factors.user_factors[row], factors.item_factors[rows[rows >= 0]], weight)
    return Factors(factors.user_ids, queries, factors.item_ids, factors.item_factors)


def rerank_with_covisits(
    candidates: pd.DataFrame, covisits: pd.DataFrame, context: dict[int, np.ndarray], weight: float, n: int
) -> pd.DataFrame:
    """The top n of each user's `candidates` (user_id, rank, movie_id, score) by `blend` of their
    score and their co-visitation (`covisits`: movie_id, neighbour_id, weight) with the user's
    `context` movies (`latest_liked`, SEQUENCE_CONTEXT of them): the realtime tier's re-ranking
    (recsys.domain.recency). Returns user_id, rank, movie_id, score."""
    ctx = pd.DataFrame(
        [(u, m) for u, movies in context.items() for m in movies[:SEQUENCE_CONTEXT]],
        columns=["user_id", "movie_id"],
    )
    sums = (
        ctx.merge(covisits, on="movie_id")
        .groupby(["user_id", "neighbour_id"], as_index=False)["weight"].sum()
        .rename(columns={"neighbour_id": "movie_id", "weight": "covisit"})
    )
    scored = candidates.merge(sums, on=["user_id", "movie_id"], how="left").fillna({"covisit": 0.0})
    scored = scored.sort_values(["user_id", "rank"], kind="stable")
    out = []
    # Users with the same number of candidates (nearly all) are blended as one matrix.
    for _, same in scored.groupby(scored.groupby("user_id")["user_id"].transform("size"), sort=False):
        width = int(len(same) / same["user_id"].nunique())
        ranked = blend(same["score"].to_numpy().reshape(-1, width),
                       same["covisit"].to_numpy().reshape(-1, width), weight)
        order = np.argsort(-ranked, axis=1, kind="stable")[:, :n]
        movies = np.take_along_axis(same["movie_id"].to_numpy().reshape(-1, width), order, 1)
        users = same["user_id"].to_numpy().reshape(-1, width)[:, : order.shape[1]]
        out.append(pd.DataFrame({
            "user_id": users.ravel(),
            "rank": np.tile(np.arange(1, order.shape[1] + 1, dtype=np.int32), len(order)),
            "movie_id": movies.ravel(),
            "score": np.take_along_axis(ranked, order, 1).ravel().astype(np.float32),
        }))
    if not out:
        return pd.DataFrame({"user_id": [], "rank": [], "movie_id": [], "score": []})
    return pd.concat(out, ignore_index=True)


def score_items(
    item_ids: np.ndarray,
    item_factors: np.ndarray,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    step: foldin.UserStep,
    k: int = 10,
    popularity: np.ndarray | None = None,
    boost: float = 0.0,
) -> metrics.Totals:
    """The holdout's ranking sums under the item factors (see the module docstring), ranked as
    served: with the model's popularity prior `boost` over `popularity` (aligned with
    `item_ids`, recsys.domain.popularity) when given."""
    if holdout.empty:
        return metrics.Totals()
    users = holdout["user_id"].unique()
    factors = fold_in_users(item_ids, item_factors, train, step, users=users)
    recs = top_n_excluding_seen(
        factors, train[["user_id", "movie_id"]], k, popularity=popularity, boost=boost
    )
    return metrics.totals(holdout, recs, k)


def score_popularity(
    item_ids: np.ndarray, counts: np.ndarray, train: pd.DataFrame, holdout: pd.DataFrame, k: int = 10
) -> metrics.Totals:
    """The holdout's ranking sums under the popularity floor: the same top k for everyone (seen
    items excluded) by `counts`, each item's count of positive training pairs (aligned with
    `item_ids`, counted over every user's training pairs, not only these)."""
    if holdout.empty:
        return metrics.Totals()
    users = np.sort(holdout["user_id"].unique()).astype(np.int64)
    factors = Factors(
        users,
        np.ones((len(users), 1), np.float32),
        np.asarray(item_ids),
        np.asarray(counts, dtype=np.float32)[:, None],
    )
    recs = top_n_excluding_seen(factors, train[["user_id", "movie_id"]], k)
    return metrics.totals(holdout, recs, k)


def popularity_counts(item_ids: np.ndarray, train: pd.DataFrame) -> np.ndarray:
    """Each item's count of positive training pairs, aligned with `item_ids`."""
    positive = train[train["strength"] > 0]
    counts: np.ndarray = positive.groupby("movie_id").size().reindex(item_ids, fill_value=0).to_numpy()
    return counts


def evaluate_items(
    item_ids: np.ndarray,
    item_factors: np.ndarray,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    step: foldin.UserStep,
    k: int = 10,
    boost: float = 0.0,
) -> dict[str, float]:
    """Ranking metrics at k of the item factors on the holdout, in this process, with the
    popularity prior `boost` over the training pairs' counts (`popularity_counts`)."""
    if holdout.empty:
        return {}
    popularity = popularity_counts(item_ids, train) if boost else None
    total = score_items(item_ids, item_factors, train, holdout, step, k, popularity, boost)
    return with_sizes(total.as_metrics(k, catalogue_size=len(item_ids)), total)


def evaluate_popularity(
    item_ids: np.ndarray, train: pd.DataFrame, holdout: pd.DataFrame, k: int = 10
) -> dict[str, float]:
    """Ranking metrics at k of the popularity floor on the same holdout as `evaluate_items`."""
    if holdout.empty:
        return {}
    counts = popularity_counts(item_ids, train)
    total = score_popularity(item_ids, counts, train, holdout, k)
    return total.as_metrics(k, catalogue_size=len(item_ids))


def with_sizes(scores: dict[str, float], total: metrics.Totals) -> dict[str, float]:
    """The metrics with the holdout's size beside them (stored with the model)."""
    return {**scores, "holdout_users": float(total.truth_users), "holdout_pairs": float(total.truth_pairs)}


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
