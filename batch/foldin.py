"""ALS fold-in: the least-squares user vector for a user's interactions, items held fixed.

Pure numpy, shared by the speed layer (a new or active user between trainings) and the
batch job (users the training did not see). It solves the implicit-feedback ALS normal
equations of Hu, Koren & Volinsky as Spark ALS (implicitPrefs) does for one user:

    x = (YtY + Y_u^T (C_u - I) Y_u + lambda * n_u * I)^-1  Y_u^T C_u p_u

with `p = 1 if r > 0 else 0`, `c = 1 + alpha * |r|`, and the regularisation scaled by the
user's number of interactions `n_u` (ALS-WR). One difference from Spark: Spark's `n_u` counts
only the positive signals, this one every informative (nonzero) one, so a user's dislikes
regularise their vector too.
YtY over all items is computed once per model (`gram`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from recsys.domain.events import DEFAULT_ALPHA, DEFAULT_REG_PARAM

FloatArray = npt.NDArray[np.float64]


def gram(item_factors: npt.ArrayLike) -> FloatArray:
    """YtY of the full item-factor matrix (n_items x rank)."""
    y = np.asarray(item_factors, dtype=np.float64)
    return y.T @ y


def aggregate_signals(item_ids: npt.ArrayLike, signals: npt.ArrayLike) -> tuple[np.ndarray, FloatArray]:
    """Sum the signals of repeated (user, item) events: unique item ids and their total signal."""
    ids = np.asarray(item_ids)
    values = np.asarray(signals, dtype=np.float64)
    unique, inverse = np.unique(ids, return_inverse=True)
    totals: FloatArray = np.bincount(inverse, weights=values, minlength=len(unique)).astype(np.float64)
    return unique, totals


def fold_in(
    user_items: npt.ArrayLike,
    signals: npt.ArrayLike,
    gram_matrix: npt.ArrayLike,
    *,
    alpha: float = DEFAULT_ALPHA,
    reg_param: float = DEFAULT_REG_PARAM,
) -> FloatArray:
    """The user vector for interactions with the items whose factors are `user_items`.

    `user_items` is (k x rank), one row per distinct item the user touched, `signals` the
    summed signal per item (see recsys.domain.events). Items with zero signal are ignored. With no
    informative interaction the vector is zero.
    """
    y_u = np.asarray(user_items, dtype=np.float64).reshape(-1, np.shape(gram_matrix)[0])
    r = np.asarray(signals, dtype=np.float64).reshape(-1)
    if y_u.shape[0] != r.shape[0]:
        raise ValueError(f"{y_u.shape[0]} item rows but {r.shape[0]} signals")
    keep = r != 0
    y_u, r = y_u[keep], r[keep]
    rank = y_u.shape[1]
    if r.size == 0:
        return np.zeros(rank)
    confidence = 1.0 + alpha * np.abs(r)
    preference = (r > 0).astype(np.float64)
    a = np.asarray(gram_matrix, dtype=np.float64) + (y_u.T * (confidence - 1.0)) @ y_u
    a += reg_param * r.size * np.eye(rank)
    b = y_u.T @ (confidence * preference)
    return np.linalg.solve(a, b)
