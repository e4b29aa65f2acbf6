"""Publish's per-user work in Spark tasks: fold-in, top-N and the COPY into PostgreSQL.

A version's users are folded in from their training pairs onto the new item factors (the
speed layer's exact ALS user step, batch.foldin) and ranked (top N, never a seen movie). That
is a solve and a row of inner products per user, so it runs where the data is: the pairs are
partitioned by user, the item factors are broadcast, and each task stages its own users with
publish.stage_users (idempotent per set of users, so a task Spark re-runs writes the same rows).
The driver only starts the staging (publish.stage_items) and switches afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from batch.als import publish
from batch.als.evaluate import fold_in_users
from batch.als.model import pad, top_n_excluding_seen
from batch.foldin import UserStep

RESULT_DDL = "users long, lists long"


@dataclass(frozen=True)
class VersionItems:
    """What every task needs, broadcast once."""

    item_ids: np.ndarray
    item_factors: np.ndarray
    catalogue: np.ndarray
    step: UserStep
    top_n: int
    # The served ranking's popularity prior (recsys.domain.popularity), aligned with item_ids.
    popularity: np.ndarray | None = None
    boost: float = 0.0


@dataclass(frozen=True)
class UserStager:
    """The mapInPandas function: one partition's training pairs in, its counts out."""

    database_url: str
    version: str
    items: Any  # a Broadcast of VersionItems

    def __call__(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # Arrow hands a partition over in chunks; a user's pairs may straddle two of them.
        chunks = list(frames)
        pairs = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
        if pairs.empty:
            yield pd.DataFrame({"users": [0], "lists": [0]})
            return
        items: VersionItems = self.items.value
        users = fold_in_users(items.item_ids, items.item_factors, pairs, items.step)
        recs = top_n_excluding_seen(
            users, pairs[["user_id", "movie_id"]], items.top_n, popularity=items.popularity, boost=items.boost
        )
        with publish.connect(self.database_url) as conn:
            publish.stage_users(
                conn, self.version, users.user_ids, pad(users.user_factors), recs, items.catalogue
            )
        yield pd.DataFrame({"users": [len(users.user_ids)], "lists": [int(recs["user_id"].nunique())]})


def stage_users_in_spark(
    spark: SparkSession,
    database_url: str,
    version: str,
    pairs_path: Path,
    items: VersionItems,
    partitions: int,
) -> tuple[int, int]:
    """Stage every user of `pairs_path` (a Parquet of user_id, movie_id, strength, ...) for `version`;
    returns (users staged, users with a list)."""
    broadcast = spark.sparkContext.broadcast(items)
    try:
        pairs = (
            spark.read.parquet(str(pairs_path))
            .select("user_id", "movie_id", "strength")
            .repartition(partitions, "user_id")
        )
        stager = UserStager(database_url, version, broadcast)
        rows = pairs.mapInPandas(stager, RESULT_DDL).collect()
    finally:
        broadcast.unpersist()
    return sum(int(r["users"]) for r in rows), sum(int(r["lists"]) for r in rows)
