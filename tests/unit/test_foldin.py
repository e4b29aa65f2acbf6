"""ALS fold-in and the shared event weights."""

import numpy as np
import pytest

from batch.foldin import UserStep, aggregate_signals, fold_in, fold_in_rendle, gram, read_signals
from recsys.domain.events import IMPLICIT, SIGNED, event_signal


def _clustered_items(rng: np.random.Generator, d: np.ndarray, n: int, spread: float = 0.1) -> np.ndarray:
    return d + spread * rng.standard_normal((n, d.size))


def test_ratings_near_a_direction_give_a_vector_along_it() -> None:
    rng = np.random.default_rng(7)
    rank = 16
    d = np.zeros(rank)
    d[0] = 1.0
    e = np.zeros(rank)
    e[1] = 1.0
    noise = 0.3 * rng.standard_normal((200, rank))
    items = np.vstack([_clustered_items(rng, d, 50), _clustered_items(rng, e, 50), noise])
    g = gram(items)
    rated = items[:5]
    x = fold_in(rated, [event_signal("rate", 5.0)] * 5, g)
    assert x @ d > 0
    assert x @ d > abs(x @ e)
    # Ranking all items by inner product puts the d-cluster first.
    top = np.argsort(-(items @ x))[:20]
    assert (top < 50).mean() > 0.8


def test_dislikes_push_away() -> None:
    rng = np.random.default_rng(1)
    rank = 8
    d = np.eye(rank)[0]
    items = np.vstack([_clustered_items(rng, d, 20), rng.standard_normal((100, rank))])
    x = fold_in(items[:4], [event_signal("dislike")] * 4, gram(items))
    assert x @ d <= 1e-9


def test_no_signal_gives_zero_vector() -> None:
    items = np.eye(4)
    assert not fold_in(np.empty((0, 4)), [], gram(items)).any()
    assert not fold_in(items[:1], [event_signal("rate", 2.5)], gram(items)).any()


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        fold_in(np.eye(4)[:2], [1.0], gram(np.eye(4)))


def test_zero_padded_dims_stay_zero() -> None:
    rng = np.random.default_rng(3)
    items = np.hstack([rng.standard_normal((30, 4)), np.zeros((30, 4))])
    x = fold_in(items[:3], [3.0, 1.0, 5.0], gram(items))
    assert np.allclose(x[4:], 0)


def test_aggregate_sums_repeats() -> None:
    ids, total = aggregate_signals([5, 3, 5], [1.0, 2.0, 3.0])
    assert ids.tolist() == [3, 5]
    assert total.tolist() == [2.0, 4.0]


@pytest.mark.parametrize(
    ("event_type", "rating", "positive"),
    [
        ("view", None, True),
        ("watch", None, True),
        ("like", None, True),
        ("dislike", None, False),
        ("rate", 5.0, True),
        ("rate", 4.0, True),
        ("rate", 1.0, False),
    ],
)
def test_event_signal_sign(event_type: str, rating: float | None, positive: bool) -> None:
    assert (event_signal(event_type, rating) > 0) is positive


# -- Rendle et al.'s user step ------------------------------------------------------------------


@pytest.mark.parametrize("reading", [SIGNED, IMPLICIT])
def test_rendle_step_zeroes_the_gradient_of_its_loss(reading: str) -> None:
    rng = np.random.default_rng(5)
    items = rng.standard_normal((40, 6))
    rows, signals = [2, 7, 11, 30], np.array([5.0, 1.0, -3.0, 2.0])
    a0, lam = 0.3, 0.02
    x = fold_in_rendle(items[rows], signals, gram(items), len(items), unobserved=a0, reg=lam, reading=reading)
    w, p = read_signals(signals, reading)
    y = items[rows]
    # d/dx of Σ_obs w (x·y - p)² + α₀ Σ_all (x·y)² + λ (n + α₀ N) ‖x‖², halved.
    grad = y.T @ (w * (y @ x - p)) + a0 * items.T @ (items @ x) + lam * (len(rows) + a0 * len(items)) * x
    assert np.allclose(grad, 0.0, atol=1e-9)


def test_readings_weigh_stars_from_neutral_or_every_pair_alike() -> None:
    signals = [event_signal("rate", 5.0), event_signal("rate", 1.0), event_signal("view")]
    w, p = read_signals(signals, SIGNED)
    assert w.tolist() == [2.5, 1.5, abs(event_signal("view")) / 2] and p.tolist() == [1, 0, 1]
    w, p = read_signals(signals, IMPLICIT)
    assert w.tolist() == [1, 1, 1] and p.tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="reading"):
        read_signals(signals, "sideways")


def test_rendle_step_keeps_the_directions_and_ignores_neutral_pairs() -> None:
    rng = np.random.default_rng(7)
    d, e = np.eye(16)[0], np.eye(16)[1]
    noise = 0.3 * rng.standard_normal((200, 16))
    items = np.vstack([_clustered_items(rng, d, 50), _clustered_items(rng, e, 50), noise])
    step = UserStep(unobserved=0.3, user_reg=0.01)
    x = step.solve(items[:5], [event_signal("rate", 5.0)] * 5, gram(items), len(items))
    assert x @ d > abs(x @ e) and (np.argsort(-(items @ x))[:20] < 50).mean() > 0.8
    assert np.allclose(step.solve(items[:5], [0.0] * 5, gram(items), len(items)), 0.0)
    # A disliked movie is an observed 0 under the signed reading: it pulls the vector away.
    disliked = event_signal("dislike")
    liked_and_disliked = step.solve(items[[0, 1, 50]], [5.0, 5.0, disliked], gram(items), len(items))
    liked = step.solve(items[[0, 1]], [5.0, 5.0], gram(items), len(items))
    assert liked_and_disliked @ items[50] < liked @ items[50]


def test_a_model_folds_in_with_the_step_it_stored() -> None:
    assert UserStep.of({"alpha": 2.0, "reg_param": 0.1, "unobserved_weight": 0.5, "user_reg": 0.03,
                        "signal_reading": IMPLICIT}) == UserStep(2.0, 0.1, 0.5, 0.03, IMPLICIT)
    # Stored before the setting existed (or Spark's regParam spelling): Spark's own step.
    legacy = UserStep.of({"alpha": 2.0, "regParam": 0.1})
    assert legacy.unobserved is None and legacy.reg_param == 0.1
    rng = np.random.default_rng(2)
    items = rng.standard_normal((20, 4))
    np.testing.assert_allclose(
        legacy.solve(items[:3], [5.0, 1.0, -3.0], gram(items), 20),
        fold_in(items[:3], [5.0, 1.0, -3.0], gram(items), alpha=2.0, reg_param=0.1),
    )
    assert UserStep.of(None) == UserStep(unobserved=None)
