"""Co-visitation: which movies users liked close together in time (recsys.domain.recency).

From the events of the training window: each user's movies of positive summed signal
(recsys.domain.events), in the order of their latest event; every two of them at most
COVISIT_WINDOW places apart make a co-visit, counted both ways. A pair's weight is its count
normalised by both movies' totals,

    count(a, b) / sqrt((total(a) + 1) * (total(b) + 1)),

so a blockbuster is not everybody's neighbour; each movie keeps its COVISIT_NEIGHBOURS
strongest. A self-join within each user's window: linear in the events (times the window), run
where the events are, never on the driver.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from batch.als.model import weight_column
from recsys.domain.recency import COVISIT_NEIGHBOURS, COVISIT_WINDOW


def liked_in_order(events: DataFrame) -> DataFrame:
    """(user_id, movie_id, place): each user's positively-signalled movies, 0 = the earliest
    by its latest event (ties by movie id, so the order is the same every run)."""
    pairs = (
        events.withColumn("w", weight_column(F.col("event_type"), F.col("rating")))
        .groupBy("user_id", "movie_id")
        .agg(F.sum("w").alias("signal"), F.max("occurred_at").alias("last_at"))
        .where(F.col("signal") > 0)
    )
    order = Window.partitionBy("user_id").orderBy("last_at", "movie_id")
    return pairs.select("user_id", "movie_id", (F.row_number().over(order) - 1).alias("place"))


def covisits(
    events: DataFrame, window: int = COVISIT_WINDOW, neighbours: int = COVISIT_NEIGHBOURS
) -> DataFrame:
    """(movie_id, neighbour_id, weight) of `events` (user_id, movie_id, event_type, rating,
    occurred_at): each movie's `neighbours` strongest co-visited movies."""
    liked = liked_in_order(events)
    a, b = liked.alias("a"), liked.alias("b")
    near = a.join(
        b,
        (F.col("a.user_id") == F.col("b.user_id"))
        & (F.col("b.place") > F.col("a.place"))
        & (F.col("b.place") <= F.col("a.place") + window),
    ).select(F.col("a.movie_id").alias("x"), F.col("b.movie_id").alias("y"))
    both_ways = near.select(F.col("x").alias("movie_id"), F.col("y").alias("neighbour_id")).unionByName(
        near.select(F.col("y").alias("movie_id"), F.col("x").alias("neighbour_id"))
    )
    counts = both_ways.groupBy("movie_id", "neighbour_id").agg(F.count("*").alias("n")).cache()
    totals = counts.groupBy("movie_id").agg(F.sum("n").alias("total"))
    weighted = (
        counts.join(totals, "movie_id")
        .join(totals.select(F.col("movie_id").alias("neighbour_id"), F.col("total").alias("total_b")),
              "neighbour_id")
        .select(
            "movie_id",
            "neighbour_id",
            (F.col("n") / F.sqrt((F.col("total") + 1) * (F.col("total_b") + 1))).alias("weight"),
        )
    )
    strongest = Window.partitionBy("movie_id").orderBy(F.desc("weight"), "neighbour_id")
    return (
        weighted.withColumn("r", F.row_number().over(strongest))
        .where(F.col("r") <= neighbours)
        .select(
            F.col("movie_id").cast("long"),
            F.col("neighbour_id").cast("long"),
            F.col("weight").cast("float"),
        )
    )
