"""ALS fold-in: the least-squares user vector for a user's interactions, items held fixed.

Pure numpy, shared by the speed layer (a new or active user between trainings), the batch job
(every user a version publishes, users the training did not see) and the publish gate. A model
folds its users in with its `UserStep`, stored in its params:

- Rendle et al. 2021's step ("Revisiting the Performance of iALS on Item Recommendation
  Benchmarks", eq. 5 for one user), a per-deployment setting (`fold_in_rendle`):

      x = (α₀ YtY + Y_uᵀ W_u Y_u + λ (n_u + α₀ N) I)^-1  Y_uᵀ W_u p_u

  with α₀ the weight of every unobserved pair, N the model's number of items, and the weights
  W and preferences p read off the summed signals (`read_signals`). The penalty is mostly the
  constant λ α₀ N, a ridge Spark's ALS cannot express; tuned on validation it lifts the user
  vectors of Spark-trained item factors above EASE on both benchmark protocols
  (bench/quality.py).
- Spark implicit ALS's own step (Hu, Koren & Volinsky), the default (`fold_in`), and the
  stream's item fold-in (users and items swapped, in the space Spark trained items in):

      x = (YtY + Y_u^T (C_u - I) Y_u + lambda * n_u * I)^-1  Y_u^T C_u p_u

  with `p = 1 if r > 0 else 0`, `c = 1 + alpha * |r|`, and the regularisation scaled by the
  user's number of interactions `n_u` (ALS-WR). One difference from Spark: Spark's `n_u` counts
  only the positive signals, this one every informative (nonzero) one, so a user's dislikes
  regularise their vector too.

YtY over all items is computed once per model (`gram`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recsys.domain.events import (
    DEFAULT_ALPHA,
    DEFAULT_REG_PARAM,
    DEFAULT_SIGNAL_READING,
    DEFAULT_USER_REG,
    IMPLICIT,
    RATING_SCALE,
    SIGNAL_READINGS,
    SIGNED,
)

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


def _informative(
    user_items: npt.ArrayLike, signals: npt.ArrayLike, gram_matrix: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """The item rows and signals of the pairs that say something (nonzero signal)."""
    y_u = np.asarray(user_items, dtype=np.float64).reshape(-1, np.shape(gram_matrix)[0])
    r = np.asarray(signals, dtype=np.float64).reshape(-1)
    if y_u.shape[0] != r.shape[0]:
        raise ValueError(f"{y_u.shape[0]} item rows but {r.shape[0]} signals")
    keep = r != 0
    return y_u[keep], r[keep]


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
    y_u, r = _informative(user_items, signals, gram_matrix)
    rank = y_u.shape[1]
    if r.size == 0:
        return np.zeros(rank)
    confidence = 1.0 + alpha * np.abs(r)
    preference = (r > 0).astype(np.float64)
    a = np.asarray(gram_matrix, dtype=np.float64) + (y_u.T * (confidence - 1.0)) @ y_u
    a += reg_param * r.size * np.eye(rank)
    b = y_u.T @ (confidence * preference)
    return np.linalg.solve(a, b)


def read_signals(signals: npt.ArrayLike, reading: str) -> tuple[FloatArray, FloatArray]:
    """Each pair's weight and preference (1 or 0) under a reading (recsys.domain.events):
    SIGNED weighs |signal| / RATING_SCALE, the stars from neutral, preferring a positive sum;
    IMPLICIT weighs every pair 1 and prefers it."""
    r = np.asarray(signals, dtype=np.float64).reshape(-1)
    if reading == SIGNED:
        return np.abs(r) / RATING_SCALE, (r > 0).astype(np.float64)
    if reading == IMPLICIT:
        return np.ones_like(r), np.ones_like(r)
    raise ValueError(f"unknown signal reading {reading!r} (one of {', '.join(SIGNAL_READINGS)})")


def fold_in_rendle(
    user_items: npt.ArrayLike,
    signals: npt.ArrayLike,
    gram_matrix: npt.ArrayLike,
    n_items: int,
    *,
    unobserved: float,
    reg: float,
    reading: str = SIGNED,
) -> FloatArray:
    """The user vector under Rendle et al.'s step (module docstring); rows and signals as for
    `fold_in`, `n_items` the number of items `gram_matrix` was computed over."""
    y_u, r = _informative(user_items, signals, gram_matrix)
    rank = y_u.shape[1]
    if r.size == 0:
        return np.zeros(rank)
    weight, preference = read_signals(r, reading)
    a = unobserved * np.asarray(gram_matrix, dtype=np.float64) + (y_u.T * weight) @ y_u
    a += reg * (r.size + unobserved * n_items) * np.eye(rank)
    return np.linalg.solve(a, y_u.T @ (weight * preference))


@dataclass(frozen=True)
class UserStep:
    """How a model folds a user in: Rendle et al.'s step when `unobserved` is set, else Spark's
    (alpha, reg_param), the default. Built from a model's stored params by `of`."""

    alpha: float = DEFAULT_ALPHA
    reg_param: float = DEFAULT_REG_PARAM
    unobserved: float | None = None
    user_reg: float = DEFAULT_USER_REG
    reading: str = DEFAULT_SIGNAL_READING

    @classmethod
    def of(cls, params: Mapping[str, Any] | None) -> UserStep:
        """The step of a model's stored params (AlsParams.as_dict). Without an
        `unobserved_weight` (the default, or a model stored before the setting existed): Spark's."""
        p = dict(params or {})
        unobserved = p.get("unobserved_weight")
        return cls(
            alpha=float(p.get("alpha", DEFAULT_ALPHA)),
            reg_param=float(p.get("reg_param", p.get("regParam", DEFAULT_REG_PARAM))),
            unobserved=None if unobserved is None else float(unobserved),
            user_reg=float(p.get("user_reg", DEFAULT_USER_REG)),
            reading=str(p.get("signal_reading", DEFAULT_SIGNAL_READING)),
        )

    def solve(
        self, user_items: npt.ArrayLike, signals: npt.ArrayLike, gram_matrix: npt.ArrayLike, n_items: int
    ) -> FloatArray:
        """The user vector (see `fold_in`); `n_items` the number of items the Gram matrix sums."""
        if self.unobserved is None:
            return fold_in(user_items, signals, gram_matrix, alpha=self.alpha, reg_param=self.reg_param)
        return fold_in_rendle(user_items, signals, gram_matrix, n_items, unobserved=self.unobserved,
                              reg=self.user_reg, reading=self.reading)
