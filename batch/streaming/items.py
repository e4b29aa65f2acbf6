"""Item fold-in: the speed layer re-solves the embeddings of movies the live model did not train.

A movie created or first seen between trainings has no trained factors: at best a cold-start
embedding (from its genres and year). When users interact with it, the stream solves its
embedding from them: ALS's item step with the user vectors held fixed, which is the user step
(batch.foldin.fold_in) with users and items swapped:

    y_i = (XtX + X_i^T (C_i - I) X_i + lambda * n_i * I)^-1  X_i^T C_i p_i

over the users with a vector who touched the movie (their summed signal per movie, user_items),
XtX over every user vector of the live model. A trained movie is never touched (the nightly
training owns it, and replaces the solved ones at the next publish). Below MIN_USERS users the
estimate would be one or two users' vectors, so the movie keeps the embedding it has.

A movie created through the CatalogueService starts with a cold-start embedding (recsys.coldstart)
scaled like its genre's trained movies, so it is served from the first request. ALS's estimate
from a handful of fans is far shorter (every other user's implicit zero pulls it down), so it
replaces that guess only once it scores the movie's own users at least as high as the guess
does: the stream takes over when the fans say more than the genre did, not before.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import psycopg

from batch.foldin import fold_in
from batch.streaming.sink import ModelEmbeddings
from recsys.domain.vectors import EMBEDDING_DIM, to_array
from recsys.tables import movies

log = logging.getLogger(__name__)

# Users with a vector a movie needs before its embedding is solved from them.
MIN_USERS = 3

# The users of some untrained movies: their summed signal and current vector.
_ITEM_USERS = """
    SELECT u.movie_id, u.signal, p.preference_vector
      FROM user_items u JOIN user_profiles p USING (user_id)
     WHERE u.movie_id = ANY(%s) AND p.preference_vector IS NOT NULL AND u.signal <> 0
"""


class UserGram:
    """XtX over the user vectors, computed once per live model version."""

    def __init__(self) -> None:
        self._version: str | None = None
        self._gram: np.ndarray | None = None

    def of(self, conn: psycopg.Connection[Any], version: str | None) -> np.ndarray:
        if self._gram is None or self._version != version:
            gram = np.zeros((EMBEDDING_DIM, EMBEDDING_DIM))
            with conn.cursor(name="user_gram") as cur:
                cur.itersize = 10_000
                cur.execute("SELECT preference_vector FROM user_profiles WHERE preference_vector IS NOT NULL")
                while rows := cur.fetchmany(10_000):
                    x = np.array([to_array(r[0], np.float64) for r in rows])
                    gram += x.T @ x
            self._version, self._gram = version, gram
        return self._gram


def solve_items(
    rows: Iterable[tuple[int, float, Any]],
    user_gram: np.ndarray,
    alpha: float,
    reg_param: float,
    current: dict[int, np.ndarray] | None = None,
) -> dict[int, np.ndarray]:
    """Embeddings of the movies of `rows` (movie_id, signal, user vector) with enough users,
    each only if it scores the movie's users at least as high as its `current` embedding."""
    by_movie: dict[int, list[tuple[float, Any]]] = defaultdict(list)
    for movie_id, signal, vector in rows:
        by_movie[int(movie_id)].append((float(signal), vector))
    solved = {}
    for movie_id, users in by_movie.items():
        if len(users) < MIN_USERS:
            continue
        x = np.array([to_array(v, np.float64) for _, v in users])
        y = fold_in(x, [s for s, _ in users], user_gram, alpha=alpha, reg_param=reg_param)
        before = (current or {}).get(movie_id)
        if before is not None and float(np.mean(x @ y)) < float(np.mean(x @ before)):
            continue
        if y.any():
            solved[movie_id] = y.astype(np.float32)
    return solved


def refresh_untrained(
    conn: psycopg.Connection[Any], movie_ids: set[int], model: ModelEmbeddings, gram: UserGram
) -> int:
    """Re-solve the untrained movies among `movie_ids` (touched by a micro-batch); how many."""
    untrained = sorted(m for m in movie_ids if m not in model.trained)
    if not untrained:
        return 0
    with conn.transaction():
        rows = conn.execute(_ITEM_USERS, (untrained,)).fetchall()
        current = {m: model.factors[model.index[m]] for m in untrained if m in model.index}
        # Spark's own item step: the items stay in the space Spark trained them in.
        step = model.step
        solved = solve_items(rows, gram.of(conn, model.version), step.alpha, step.reg_param, current)
        with conn.cursor() as cur:
            movies.set_solved_embeddings(cur, solved.items(), model.version)
    if solved:
        log.info("item fold-in", extra={"movies": len(solved), "candidates": len(untrained)})
    return len(solved)
