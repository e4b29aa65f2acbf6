"""The gate's evaluation in Spark tasks adds up to the same metrics as scoring in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from batch.als.evaluate import evaluate_items, evaluate_popularity
from batch.als.score_holdout import POPULARITY, Scored, score_in_spark
from batch.foldin import UserStep

ITEMS = np.arange(100, 130, dtype=np.int64)
STEP = UserStep(alpha=1.0, reg_param=0.1, unobserved=0.3)  # Rendle et al.'s step
SPARK_STEP = UserStep(alpha=1.0, reg_param=0.1)  # Spark's, the default and older models'


def _pairs(n_users: int = 60, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        seen = rng.choice(ITEMS, size=int(rng.integers(4, 12)), replace=False)
        for movie in seen:
            rows.append((user, int(movie), float(rng.choice([1.0, 2.0, -1.0], p=[0.6, 0.3, 0.1]))))
    pairs = pd.DataFrame(rows, columns=["user_id", "movie_id", "strength"]).astype(
        {"user_id": "int32", "movie_id": "int32", "strength": "float32"}
    )
    pairs["is_holdout"] = (pairs["strength"] > 0) & (rng.random(len(pairs)) < 0.25)
    return pairs


def _model(
    name: str, seed: int, items: np.ndarray = ITEMS, boost: float = 0.0, step: UserStep = STEP
) -> Scored:
    factors = np.random.default_rng(seed).normal(size=(len(items), 4)).astype(np.float32)
    return Scored(name, items, factors, step, boost=boost)


def _write(pairs: pd.DataFrame, path: Path) -> Path:
    # As the fit stage leaves it: a directory of part files.
    path.mkdir()
    half = len(pairs) // 2
    pairs.iloc[:half].to_parquet(path / "part-0.parquet")
    pairs.iloc[half:].to_parquet(path / "part-1.parquet")
    return path


def test_sums_over_partitions_equal_scoring_every_user_at_once(spark: Any, tmp_path: Path) -> None:
    pairs = _pairs()
    path = _write(pairs, tmp_path / "pairs.parquet")
    # The live model's items in another order: its popularity prior must follow its own rows;
    # and with Spark's user step while the new one has Rendle's: each scored with its own.
    models = [_model("new", 1, boost=0.5), _model("live", 2, items=ITEMS[::-1], boost=0.3, step=SPARK_STEP)]
    out = score_in_spark(spark, path, models, ITEMS, k=5, max_users=10_000, partitions=3)

    train = pairs[~pairs["is_holdout"]]
    holdout = pairs[pairs["is_holdout"]]
    assert out.sampled == 1.0 and out.holdout_users == holdout["user_id"].nunique()
    for m in models:
        alone = evaluate_items(
            m.item_ids, m.item_factors, train, holdout, m.step, k=5, boost=m.boost
        )
        got = out.totals[m.name].as_metrics(5, catalogue_size=len(ITEMS))
        assert got == pytest.approx({k: v for k, v in alone.items() if not k.startswith("holdout_")})
        assert out.totals[m.name].truth_users == alone["holdout_users"]
    floor = evaluate_popularity(ITEMS, train, holdout, k=5)
    assert out.totals[POPULARITY].as_metrics(5, catalogue_size=len(ITEMS)) == pytest.approx(floor)
    # The two models rank differently: the comparison is not vacuous.
    assert out.totals["new"].as_metrics(5) != out.totals["live"].as_metrics(5)
    # Each with its own step: the live model under the new step would score otherwise.
    live = models[1]
    other = evaluate_items(live.item_ids, live.item_factors, train, holdout, STEP, k=5, boost=live.boost)
    assert out.totals["live"].as_metrics(5)["ndcg@5"] != pytest.approx(other["ndcg@5"])


def test_a_large_holdout_is_sampled_the_same_way_every_time(spark: Any, tmp_path: Path) -> None:
    path = _write(_pairs(n_users=200), tmp_path / "pairs.parquet")
    models = [_model("new", 1)]
    first = score_in_spark(spark, path, models, ITEMS, k=5, max_users=60, partitions=2)
    again = score_in_spark(spark, path, models, ITEMS, k=5, max_users=60, partitions=2)
    scored = first.totals["new"].truth_users
    assert first.sampled < 1.0
    assert 20 <= scored < first.holdout_users
    # Every model and the floor are scored on the same sampled users.
    assert first.totals[POPULARITY].truth_users == scored
    assert again.totals["new"] == first.totals["new"]
