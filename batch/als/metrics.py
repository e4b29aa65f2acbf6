"""Offline evaluation metrics, pure pandas/numpy.

The ranking metrics follow Microsoft Recommenders' `python_evaluation.py` (relevancy "top_k",
binary relevance) so that our figures compare with their published benchmark:

- the truth and the recommendations are first restricted to the users present in both;
  `n_users` is the number of those common users;
- a user's recommendations are ranked by score, the first k kept, ranks 1..k;
- a hit is a recommended (user, item) pair present in the truth;
- precision@k = sum_u hits_u / k / n_users;
- recall@k = sum_u hits_u / |truth_u| / n_users;
- MAP@k = sum_u (sum over hits of (i-th hit) / rank) / min(|truth_u|, k) / n_users;
- MAP (their column "MAP" without @k) divides by |truth_u| instead of min(|truth_u|, k);
- nDCG@k = mean over the users of the truth of DCG/IDCG with gain 1 per hit and discount
  1/ln(1 + rank); IDCG puts min(|truth_u|, k) relevant items first. (A truth user without any
  recommendation counts 0 here, as in the reference, where the truth is joined outer.)

Frames use the columns `user_id`, `movie_id` and `score` (predictions) / `rating` (truth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

USER = "user_id"
ITEM = "movie_id"
SCORE = "score"
RATING = "rating"


def top_k(pred: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k best-scored items per user with their rank (1-based), sorted by user and rank."""
    ordered = pred.sort_values([USER, SCORE], ascending=[True, False], kind="mergesort")
    best = ordered.groupby(USER, sort=False).head(k).copy()
    best["rank"] = best.groupby(USER, sort=False).cumcount() + 1
    return best.reset_index(drop=True)


@dataclass(frozen=True)
class _Hits:
    hits: pd.DataFrame  # user, item, rank of every hit in the top k
    per_user: pd.DataFrame  # user, hit (count), actual (|truth_u|) for users with >= 1 hit
    n_users: int  # users present in both frames


def _hits(truth: pd.DataFrame, ranked: pd.DataFrame) -> _Hits:
    """The hits of `ranked` (`top_k` of the predictions) among the users of both frames."""
    common = np.intersect1d(truth[USER].unique(), ranked[USER].unique())
    truth_c = truth[truth[USER].isin(common)]
    ranked = ranked[ranked[USER].isin(common)]
    hits = ranked.merge(truth_c[[USER, ITEM]], on=[USER, ITEM])[[USER, ITEM, "rank"]]
    hits = hits.sort_values([USER, "rank"], kind="mergesort").reset_index(drop=True)
    hit_count = hits.groupby(USER).size().rename("hit")
    actual = truth_c.groupby(USER).size().rename("actual")
    per_user = pd.concat([hit_count, actual], axis=1, join="inner").reset_index()
    return _Hits(hits=hits, per_user=per_user, n_users=len(common))


def precision_at_k(truth: pd.DataFrame, pred: pd.DataFrame, k: int = 10) -> float:
    """Share of the top k that is relevant, averaged over the common users."""
    return totals(truth, pred, k).as_metrics(k)[f"precision@{k}"]


def recall_at_k(truth: pd.DataFrame, pred: pd.DataFrame, k: int = 10) -> float:
    """Share of each user's relevant items found in the top k, averaged over the common users."""
    return totals(truth, pred, k).as_metrics(k)[f"recall@{k}"]


def map_at_k(truth: pd.DataFrame, pred: pd.DataFrame, k: int = 10) -> float:
    """Mean average precision at k, normalised by min(|truth_u|, k)."""
    return totals(truth, pred, k).as_metrics(k)[f"map@{k}"]


def map_full(truth: pd.DataFrame, pred: pd.DataFrame, k: int = 10) -> float:
    """The reference's `map`: as MAP@k but normalised by |truth_u| (their benchmark's column)."""
    return totals(truth, pred, k).as_metrics(k)["map"]


def _reciprocal_precision(h: _Hits) -> pd.DataFrame:
    hits = h.hits.copy()
    hits["rr"] = (hits.groupby(USER).cumcount() + 1) / hits["rank"]
    rr = hits.groupby(USER)["rr"].sum().rename("rr").reset_index()
    return rr.merge(h.per_user, on=USER)


def ndcg_per_user(truth: pd.DataFrame, pred: pd.DataFrame, k: int = 10) -> pd.Series:
    """Binary-gain nDCG@k with a natural-log discount for each user of the truth (0 if no hit)."""
    return _ndcg_per_user(truth, _hits(truth, top_k(pred, k)), k)


def _ndcg_per_user(truth: pd.DataFrame, h: _Hits, k: int) -> pd.Series:
    dcg = (1.0 / np.log1p(h.hits["rank"].to_numpy())).astype(float)
    dcg_u = pd.Series(dcg, index=h.hits[USER].to_numpy()).groupby(level=0).sum()
    n_true = truth.groupby(USER).size()
    ideal_table = np.cumsum(1.0 / np.log1p(np.arange(1, k + 1)))
    idcg_u = pd.Series(ideal_table[np.minimum(n_true.to_numpy(), k) - 1], index=n_true.index)
    return dcg_u.reindex(idcg_u.index, fill_value=0.0) / idcg_u


def ndcg_at_k(truth: pd.DataFrame, pred: pd.DataFrame, k: int = 10) -> float:
    """`ndcg_per_user` averaged over the users of the truth."""
    return totals(truth, pred, k).as_metrics(k)[f"ndcg@{k}"]


def catalogue_coverage(pred: pd.DataFrame, catalogue_size: int, k: int = 10) -> float:
    """Share of the catalogue that appears in at least one user's top k."""
    return Totals(items=_items(top_k(pred, k))).as_metrics(k, catalogue_size)[f"coverage@{k}"]


def _items(ranked: pd.DataFrame) -> frozenset[int]:
    return frozenset(int(i) for i in ranked[ITEM].unique())


@dataclass(frozen=True)
class Totals:
    """The ranking metrics of a set of users as sums, so that disjoint sets of users (a Spark
    partition each) add up to the metrics of all of them: `a + b`, then `as_metrics`."""

    truth_users: int = 0  # users of the truth (nDCG's denominator)
    truth_pairs: int = 0
    common_users: int = 0  # users in both frames (precision's, recall's and MAP's)
    ndcg: float = 0.0
    precision: float = 0.0
    recall: float = 0.0
    map_k: float = 0.0
    map: float = 0.0
    items: frozenset[int] = frozenset()  # every item of a top k (catalogue coverage)

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.truth_users + other.truth_users,
            self.truth_pairs + other.truth_pairs,
            self.common_users + other.common_users,
            self.ndcg + other.ndcg,
            self.precision + other.precision,
            self.recall + other.recall,
            self.map_k + other.map_k,
            self.map + other.map,
            self.items | other.items,
        )

    def as_metrics(self, k: int, catalogue_size: int | None = None) -> dict[str, float]:
        """The metrics of these users, keyed as stored in `models.metrics`."""

        def per(total: float, users: int) -> float:
            return float(total / users) if users else 0.0

        out = {
            f"ndcg@{k}": per(self.ndcg, self.truth_users),
            f"precision@{k}": per(self.precision, self.common_users),
            f"recall@{k}": per(self.recall, self.common_users),
            f"map@{k}": per(self.map_k, self.common_users),
            "map": per(self.map, self.common_users),
        }
        if catalogue_size is not None:
            out[f"coverage@{k}"] = per(len(self.items), catalogue_size)
        return out


def totals(truth: pd.DataFrame, pred: pd.DataFrame, k: int = 10) -> Totals:
    """The sums behind every ranking metric of `pred` on `truth` (see the module docstring)."""
    ranked = top_k(pred, k)  # sorted once, for the hits and the coverage alike
    h = _hits(truth, ranked)
    rr = _reciprocal_precision(h) if not h.hits.empty else pd.DataFrame({"rr": [], "actual": []})
    return Totals(
        truth_users=int(truth[USER].nunique()),
        truth_pairs=len(truth),
        common_users=h.n_users,
        ndcg=float(_ndcg_per_user(truth, h, k).sum()) if not truth.empty else 0.0,
        precision=float((h.per_user["hit"] / k).sum()),
        recall=float((h.per_user["hit"] / h.per_user["actual"]).sum()),
        map_k=float((rr["rr"] / rr["actual"].clip(upper=k)).sum()),
        map=float((rr["rr"] / rr["actual"]).sum()),
        items=_items(ranked),
    )


def ranking_metrics(
    truth: pd.DataFrame, pred: pd.DataFrame, k: int = 10, catalogue_size: int | None = None
) -> dict[str, float]:
    """All ranking metrics of one run, keyed as stored in `models.metrics`."""
    return totals(truth, pred, k).as_metrics(k, catalogue_size)
