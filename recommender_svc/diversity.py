"""Diversity re-ranking: maximal marginal relevance (Carbonell and Goldstein, 1998) over genres.

The request's `diversity` weight w in [0, 1] picks the list greedily from the ranked candidates:
each next movie maximises

    (1 - w) * relevance(i) - w * max over the movies already picked of similarity(i, j)

- relevance is by rank, 1 - r / n for the r-th (0-based) of n candidates: the cascade's lists
  mix tiers whose scores are not on one scale (inner products, popularity), but every list is
  in order of relevance;
- similarity is the Jaccard overlap of the two movies' genre sets (0 when either has none), the
  complement of the intra-list diversity that bench/diversity.py reports, so a user who likes
  one genre gets the best of the others between its movies.

w = 0 keeps the order; w = 1 ignores relevance after the first pick. bench/diversity.md measures
NDCG@10 and intra-list diversity at several weights on MovieLens 100K.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations


def genre_similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard overlap of two genre sets; 0 when either is empty."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def mmr_order(genres: Sequence[frozenset[str]], weight: float, k: int) -> list[int]:
    """The indexes of the first `k` picks from candidates in relevance order (see the module
    docstring); ties go to the more relevant candidate."""
    n = len(genres)
    if weight <= 0.0 or n <= 1:
        return list(range(min(k, n)))
    relevance = [1.0 - r / n for r in range(n)]
    closest = [0.0] * n  # each candidate's highest similarity to a picked movie
    remaining = list(range(n))
    picked: list[int] = []
    while remaining and len(picked) < k:
        best = max(remaining, key=lambda i: ((1.0 - weight) * relevance[i] - weight * closest[i], -i))
        picked.append(best)
        remaining.remove(best)
        for i in remaining:
            closest[i] = max(closest[i], genre_similarity(genres[i], genres[best]))
    return picked


def intra_list_diversity(genres: Sequence[frozenset[str]]) -> float:
    """Mean genre distance (1 - Jaccard) over the list's pairs; 0 for fewer than two movies."""
    pairs = list(combinations(genres, 2))
    if not pairs:
        return 0.0
    return sum(1.0 - genre_similarity(a, b) for a, b in pairs) / len(pairs)
