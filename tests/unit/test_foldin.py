"""ALS fold-in and the shared event weights."""

import numpy as np
import pytest

from batch.foldin import aggregate_signals, fold_in, gram
from recsys.domain.events import event_signal


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
