"""The publish gate: a model that does not beat popularity on the holdout is never published."""

from __future__ import annotations

import numpy as np
import pandas as pd

from batch.als.evaluate import evaluate_items, evaluate_popularity, gate
from batch.foldin import UserStep

ITEMS = np.array([10, 11, 12, 13], dtype=np.int64)
# Item 10 is the most popular; users 1-3 have each seen one other item and hold 10 out.
TRAIN = pd.DataFrame(
    {"user_id": [1, 2, 3, 4, 5], "movie_id": [11, 12, 13, 10, 10], "strength": [5.0] * 5}
)
HOLDOUT = pd.DataFrame({"user_id": [1, 2, 3], "movie_id": [10, 10, 10], "strength": [5.0] * 3})


def test_popularity_floor_on_the_holdout() -> None:
    scores = evaluate_popularity(ITEMS, TRAIN, HOLDOUT, k=1)
    assert scores["ndcg@1"] == 1.0


def test_a_model_below_popularity_is_rejected_even_without_a_live_model() -> None:
    # Factors under which item 10 is every user's least likely item.
    factors = np.array([[-1.0, 0.0], [1.0, 0.0], [1.0, 0.1], [1.0, -0.1]], dtype=np.float32)
    new = evaluate_items(ITEMS, factors, TRAIN, HOLDOUT, UserStep(alpha=1.0, reg_param=0.1), k=1)
    floor = evaluate_popularity(ITEMS, TRAIN, HOLDOUT, k=1)
    assert new["ndcg@1"] < floor["ndcg@1"]
    assert gate(new["ndcg@1"], floor["ndcg@1"], None, tolerance=0.005) == "rejected"


def test_gate_rules() -> None:
    assert gate(0.30, 0.20, None, 0.005) == "candidate"
    assert gate(0.20, 0.20, None, 0.005) == "rejected"  # a tie with popularity is not a win
    assert gate(0.30, 0.20, 0.303, 0.005) == "candidate"  # within the live model's tolerance
    assert gate(0.30, 0.20, 0.31, 0.005) == "rejected"
