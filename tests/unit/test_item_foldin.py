"""The stream's item fold-in (batch.streaming.items) is ALS's item step, exactly."""

import numpy as np

from batch.streaming.items import MIN_USERS, solve_items
from recsys.domain.vectors import EMBEDDING_DIM


def _objective(
    y: np.ndarray, x_all: np.ndarray, signals: dict[int, float], alpha: float, reg: float
) -> float:
    """Implicit ALS's loss for one item, user vectors fixed: every user counts, those who did not
    touch it with preference 0 and confidence 1; regularisation scaled by its users (ALS-WR)."""
    total = 0.0
    for u, x in enumerate(x_all):
        r = signals.get(u, 0.0)
        c = 1.0 + alpha * abs(r)
        p = 1.0 if r > 0 else 0.0
        total += c * (p - x @ y) ** 2
    return total + reg * len(signals) * float(y @ y)


def test_the_solved_embedding_minimises_the_item_objective() -> None:
    rng = np.random.default_rng(3)
    x_all = rng.normal(scale=0.3, size=(40, EMBEDDING_DIM))
    signals = {2: 4.0, 5: 1.0, 11: 2.5, 17: -1.0, 30: 1.0}
    rows = [(99, s, x_all[u].astype(np.float32)) for u, s in signals.items()]
    alpha, reg = 1.0, 0.4
    # The vectors as stored (float32), so the check is on what the solve saw.
    x_seen = x_all.copy()
    for u in signals:
        x_seen[u] = x_all[u].astype(np.float32)
    y = solve_items(rows, x_seen.T @ x_seen, alpha, reg)[99].astype(np.float64)
    best = _objective(y, x_seen, signals, alpha, reg)
    for _ in range(20):  # no small step away from it does better
        step = rng.normal(scale=1e-3, size=EMBEDDING_DIM)
        assert _objective(y + step, x_seen, signals, alpha, reg) > best


def test_a_movie_is_solved_only_with_enough_users() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(MIN_USERS, EMBEDDING_DIM)).astype(np.float32)
    gram = (x.T @ x).astype(np.float64) + np.eye(EMBEDDING_DIM)
    few = [(7, 1.0, x[i]) for i in range(MIN_USERS - 1)]
    enough = [(8, 1.0, x[i]) for i in range(MIN_USERS)]
    solved = solve_items(few + enough, gram, 1.0, 0.4)
    assert set(solved) == {8}
    # Liked by users alike: the embedding scores those users' direction positively.
    assert float(x.mean(axis=0) @ solved[8]) > 0


def test_a_cold_start_guess_stays_until_the_fans_say_more() -> None:
    """The solve replaces the current embedding only if it scores the movie's users as high."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(MIN_USERS + 2, EMBEDDING_DIM)).astype(np.float32)
    gram = (x.T @ x).astype(np.float64) + 50 * np.eye(EMBEDDING_DIM)
    rows = [(9, 1.0, v) for v in x]
    (free,) = solve_items(rows, gram, 1.0, 0.4).values()
    strong_guess = 10 * x.mean(axis=0)  # scores these users far above the solve
    weak_guess = -x.mean(axis=0)  # scores them below zero
    assert solve_items(rows, gram, 1.0, 0.4, {9: strong_guess}) == {}
    assert np.allclose(solve_items(rows, gram, 1.0, 0.4, {9: weak_guess})[9], free)
