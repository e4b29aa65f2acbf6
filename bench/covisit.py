"""What co-visit counting adds to the nightly fit, beside the ALS fit of the same events.

    .venv/bin/python bench/covisit.py [--events 1000000 5000000] [--out bench/covisit.md]

For each size: synthetic events in Spark (users with 20 events on average, a Zipf-like
popularity over 100 movies per 1,000 events, ratings 0.5-5, times spread over a year), then on
the same cached frame, in the same local Spark session (this machine's cores):
  * the ALS fit of the nightly job (`batch.als.model.fit_implicit` on `interaction_strengths`,
    the default params), factors collected: the baseline;
  * co-visit counting (`batch.als.covisit.covisits`, the fit stage's), written to Parquet as
    the fit stage does.
Prints the seconds of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic_events(spark, n: int):  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    users = max(1, n // 20)
    movies = max(100, n // 10)
    u = F.rand(seed=1)
    return (
        spark.range(n)
        .select(
            (F.floor(u * users)).cast("long").alias("user_id"),
            # rank ~ movies * r^3: a few movies take most events
            (F.floor(F.pow(F.rand(seed=2), 3) * movies) + 1).cast("long").alias("movie_id"),
            F.lit("rate").alias("event_type"),
            (F.floor(F.rand(seed=3) * 10) / 2 + 0.5).alias("rating"),
            (F.lit(1_700_000_000) + F.floor(F.rand(seed=4) * 365 * 86400))
            .cast("timestamp").alias("occurred_at"),
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--out", type=Path)
    opts = parser.parse_args(argv)

    from batch.als.covisit import covisits
    from batch.als.model import AlsParams, collect_factors, fit_implicit, interaction_strengths
    from batch.common.spark import build_session

    spark = build_session("recsys-covisit-bench")
    spark.sparkContext.setCheckpointDir(tempfile.mkdtemp())
    rows = ["# Co-visit counting beside the ALS fit", "",
            "`bench/covisit.py`: synthetic events, one local Spark session (default parallelism "
            f"{spark.sparkContext.defaultParallelism}, {os.cpu_count()} cores), default ALS params.", "",
            "| events | ALS fit + collect, s | co-visit counting + write, s | co-visits / ALS "
            "| co-visit rows |",
            "|---:|---:|---:|---:|---:|"]
    try:
        for n in opts.events:
            events = synthetic_events(spark, n).cache()
            events.count()
            started = time.perf_counter()
            collect_factors(fit_implicit(interaction_strengths(events), AlsParams()))
            als = time.perf_counter() - started
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                covisits(events).write.parquet(f"{tmp}/covisits.parquet")
                counting = time.perf_counter() - started
                written = spark.read.parquet(f"{tmp}/covisits.parquet").count()
            events.unpersist()
            rows.append(f"| {n:,} | {als:.1f} | {counting:.1f} | {counting / als:.2f} | {written:,} |")
            print(rows[-1], flush=True)
    finally:
        spark.stop()
    text = "\n".join(rows) + "\n"
    print(text)
    if opts.out:
        opts.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
