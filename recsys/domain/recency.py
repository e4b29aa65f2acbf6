"""Short-term interest: what the user liked last steers the realtime tier, in two ways.

1. The query leans towards the movies the user liked last.

A user's fold-in vector (batch.foldin) weighs their whole history alike: ALS sees a bag of
movies, not an order. What a person watches next follows what they watched just now (a
session, a mood, a series), so the realtime tier queries the index with

    q = x / |x|  +  w * s / |s|

where x is the user's vector, s the mean embedding of the RECENT_MOVIES movies they most
recently gave a positive summed signal (by their latest event on each, pending events
included), and w the live model's `recent_weight`. Both parts are scaled to unit length, so
w alone sets the balance whatever the model's factor norms. The ranking is unchanged by the
overall scale of q (the popularity prior multiplies the score), so w = 0 serves exactly the
fold-in vector.

w is a per-deployment setting stored with the model (AlsParams.recent_weight), chosen on a
temporal validation split (bench/quality.py): it helps where what comes next follows what
came last (MovieLens latest-small, each user's last 20 % held out) and costs accuracy where it
does not (a random split, where "last" means nothing). The default 0 leaves the query as it was.
The stored vector stays the fold-in vector: the stream's item fold-in and the batch lists read
it as ALS's user factors.

2. What others liked next: the candidates are re-ranked with co-visitation. The nightly job
counts, over every user's positive signals in time order, how often two movies were liked
within COVISIT_WINDOW places of each other (batch.als.covisit), normalised by both movies'
totals, and publishes each movie's COVISIT_NEIGHBOURS strongest neighbours with the model
(model_covisits). The realtime tier fetches RERANK_DEPTH candidates for the query, sums each
candidate's co-visitation with the user's SEQUENCE_CONTEXT latest liked movies, and ranks by

    z(score) + v * z(co-visitation)

(z: standardised over the candidates, `blend`), v the model's `sequence_weight`. It is the
"people who liked this liked that next" of production recommenders, kept to re-ranking what ALS
retrieved, so the embeddings, the index and fold-in are unchanged. Chosen on validation like w:
on the temporal split it is the largest lever measured; on a random split, where the order of a
user's movies is noise, the grid sets it to 0, the default.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

# The fallback for a model that stored none: no short-term part.
DEFAULT_RECENT_WEIGHT = 0.0

# How many of the latest positively-signalled movies make the short-term part (chosen on the
# temporal validation split with bench/quality.py: 3-5 lead, 10 blurs the session into the
# history).
RECENT_MOVIES = 5

# The fallback for a model that stored none: no co-visitation re-ranking.
DEFAULT_SEQUENCE_WEIGHT = 0.0
# The latest liked movies whose co-visits re-rank the candidates, newest first (chosen with
# bench/quality.py on the temporal validation split, like the two below: 2-3 lead).
SEQUENCE_CONTEXT = 3
# Two positive signals of one user count as a co-visit when at most this many places apart in
# the user's time order (1-20 measured: 5 led; nearer counts too few pairs, 10-20 blur them).
COVISIT_WINDOW = 5
# Neighbours kept per movie, strongest first.
COVISIT_NEIGHBOURS = 100
# The latest liked movies serving reads for both parts.
LATEST_LIKED = max(RECENT_MOVIES, SEQUENCE_CONTEXT)


class Liked(NamedTuple):
    """One of a user's latest liked movies."""

    movie_id: int
    embedding: np.ndarray[Any, Any]


def _unit(v: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def query_vector(
    user_vector: npt.ArrayLike, recent: npt.ArrayLike, weight: float
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The realtime query of a user: `user_vector` leaning by `weight` towards the mean of
    `recent`, the embeddings of their latest liked movies, newest first (the first
    RECENT_MOVIES count; possibly none). With no weight or no recent movie, `user_vector` itself."""
    x = np.asarray(user_vector, dtype=np.float64)
    rows = np.asarray(recent, dtype=np.float64).reshape(-1, x.shape[-1])[:RECENT_MOVIES]
    if weight <= 0 or rows.shape[0] == 0:
        return x.astype(np.float32)
    return (_unit(x) + weight * _unit(rows.mean(axis=0))).astype(np.float32)


def _z(v: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    mean = v.mean(axis=-1, keepdims=True)
    spread = v.std(axis=-1, keepdims=True)
    z: np.ndarray[Any, np.dtype[np.float64]] = np.zeros_like(v)
    np.divide(v - mean, spread, out=z, where=spread > 0)
    return z


def blend(
    scores: npt.ArrayLike, covisits: npt.ArrayLike, weight: float
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The re-ranking score of a user's candidates (the last axis; rows are users):
    z(scores) + weight * z(covisits), a part that is the same for every candidate counting 0.
    With no weight, the scores themselves."""
    s = np.asarray(scores, dtype=np.float64)
    if weight <= 0:
        return s
    return _z(s) + weight * _z(np.asarray(covisits, dtype=np.float64))


def check_weight(value: Any, name: str) -> float:
    """`value` as a weight, or a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)
