"""batch.als.covisit on the unit tests' local Spark session: which movies count as liked next."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

pytestmark = pytest.mark.spark

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _events(rows: list[tuple[int, int, str, float | None, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(u, m, kind, rating, T0 + timedelta(minutes=minute)) for u, m, kind, rating, minute in rows],
        columns=["user_id", "movie_id", "event_type", "rating", "occurred_at"],
    )


# User 1 likes 1, 2, 3 in that order, with a dislike (4) between 2 and 3 and a low rating (5)
# that is not positive; user 2 likes 1 then 3, and clicked 1 again at the end, which moves 1
# to the end of their order.
EVENTS = _events([
    (1, 1, "rate", 5.0, 0), (1, 2, "like", None, 1), (1, 4, "dislike", None, 2),
    (1, 5, "rate", 1.0, 3), (1, 3, "rate", 4.0, 4),
    (2, 1, "rate", 4.5, 0), (2, 3, "like", None, 1), (2, 1, "click", None, 2),
])


def _weights(spark: Any, window: int, neighbours: int = 100) -> dict[tuple[int, int], float]:
    from batch.als.covisit import covisits, liked_in_order

    order = liked_in_order(spark.createDataFrame(EVENTS)).toPandas()
    assert order.sort_values(["user_id", "place"]).groupby("user_id")["movie_id"].apply(list).to_dict() == {
        1: [1, 2, 3], 2: [3, 1]}
    rows = covisits(spark.createDataFrame(EVENTS), window=window, neighbours=neighbours).toPandas()
    return {(int(r.movie_id), int(r.neighbour_id)): float(r.weight) for r in rows.itertuples()}


def test_movies_liked_next_to_each_other_are_neighbours_both_ways(spark: Any) -> None:
    got = _weights(spark, window=1)
    # places 1 apart: (1, 2) and (2, 3) of user 1, (3, 1) of user 2; every movie's total is 2
    assert got == pytest.approx({(1, 2): 1 / 3, (2, 1): 1 / 3, (2, 3): 1 / 3, (3, 2): 1 / 3,
                                 (1, 3): 1 / 3, (3, 1): 1 / 3})
    assert not {4, 5} & {m for pair in got for m in pair}, "only positive signals count"


def test_a_wider_window_counts_more_pairs_and_normalises_by_both_totals(spark: Any) -> None:
    got = _weights(spark, window=2)
    # user 1's 1 and 3 are two places apart: 1-3 counted twice; totals 1: 3, 2: 2, 3: 3
    assert got[(1, 3)] == pytest.approx(2 / math.sqrt(4 * 4))
    assert got[(1, 2)] == pytest.approx(1 / math.sqrt(4 * 3))


def test_each_movie_keeps_only_its_strongest_neighbours(spark: Any) -> None:
    got = _weights(spark, window=2, neighbours=1)
    assert got.keys() == {(1, 3), (3, 1), (2, 1)}  # 2's two neighbours tie: the lower id stays
