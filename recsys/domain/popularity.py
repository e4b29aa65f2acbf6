"""The popularity prior of the served ranking: one formula for every path that ranks.

A model's `popularity_boost` beta ranks a user's candidates by

    score * max(popularity, 1) ** beta

(the inner product of the user vector with the movie's factors, times the prior), as if each
movie's vector were scaled by its popularity ** beta. The factors themselves stay unscaled,
because fold-in (batch.foldin) solves user vectors against them; so retrieval keeps ranking by
the plain inner product (the pgvector index) and the prior re-ranks the RERANK_DEPTH nearest
movies. The batch lists and the publish gate take the same two steps in numpy
(batch.als.model.top_n_excluding_seen), so the gate measures what is served.

`popularity` is the model's count of the movie's positive training pairs (model_item_factors).
A movie the model did not train (created since, cold-started, folded in by the stream) has no
such count: it takes the model's median, the typical movie, as its cold-start embedding stands
for a typical movie of its genres; with a count of 0 a new movie would be buried under every
known one. beta is chosen on validation splits (bench/quality.py) and stored with the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

# The fallback for a model that stored none (see recsys.domain.events for alpha / reg_param).
DEFAULT_POPULARITY_BOOST = 0.2

# Nearest movies by inner product that the prior re-ranks. bench/quality.py measures the
# two-step ranking against the prior applied to every movie.
RERANK_DEPTH = 100


def depth(k: int, *reranking: float) -> int:
    """How many nearest movies to fetch for k re-ranked ones: more under any re-ranking weight
    (the prior's boost, co-visitation's weight: recsys.domain.recency)."""
    return max(k, RERANK_DEPTH) if any(reranking) else k


def prior(popularity: npt.ArrayLike, boost: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """max(popularity, 1) ** boost, elementwise."""
    return np.power(np.maximum(np.asarray(popularity, dtype=np.float64), 1.0), boost)


def prior_sql(popularity: str, boost: str) -> str:
    """`prior` as a SQL expression over a popularity column and a boost parameter."""
    return f"power(greatest({popularity}, 1)::float8, {boost}::float8)"
