"""Diversity against accuracy: GetRecommendations' `diversity` weight on MovieLens 100K.

    .venv/bin/python bench/diversity.py [--out bench/diversity.md]

The served pipeline, offline: Spark implicit ALS with the served defaults (`batch.als.model`),
user vectors folded in as published, each test user's top 50 unseen movies (the pool the
Recommender re-ranks: its cache entry, `recommender_svc.servicer.CACHE_SIZE`), then the served
re-rank (`recommender_svc.diversity.mmr_order`) at each weight, the first 10 kept.

Split: MovieLens 100K, 75/25 stratified by user with seed 42 (bench/quality.py's `ml100k`
protocol). Per weight: NDCG@10 and precision@10 against the test part (every held-out rating
relevant, as bench/quality.md), intra-list diversity (mean genre distance, 1 - Jaccard, over the
list's 45 pairs), distinct genres per list, catalogue coverage; NDCG@10's change from weight 0
with a paired bootstrap 95 % interval over test users.

Data: $MOVIELENS_DIR (default ../shared/data/movielens) holding ml-100k/. Missing data exits 0
with a message, or fails when CI=true.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from batch.als import metrics  # noqa: E402
from bench.quality import (  # noqa: E402
    SERVED,
    SparkAls,
    data_dir,
    load_ml100k,
    paired_bootstrap,
    stratified_split,
)
from recommender_svc.diversity import intra_list_diversity, mmr_order  # noqa: E402
from recsys.importer.movielens import read_100k_genres, read_100k_items  # noqa: E402

K = 10
POOL = 50  # recommender_svc.servicer.CACHE_SIZE: what a diverse answer is picked from
WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def movie_genres(root: Path) -> dict[int, frozenset[str]]:
    genres = read_100k_genres(root / "ml-100k" / "u.genre")
    return {m.movie_id: frozenset(m.genres) for m in read_100k_items(root / "ml-100k" / "u.item", genres)}


def rerank(pool: pd.DataFrame, genres: dict[int, frozenset[str]], weight: float) -> pd.DataFrame:
    """Each user's top-K picked from their pool (user_id, movie_id, rank) at `weight`;
    score = K - position, so metrics.top_k keeps the picked order."""
    rows = []
    for user, group in pool.sort_values(["user_id", "rank"]).groupby("user_id", sort=False):
        movies = group["movie_id"].to_numpy()
        order = mmr_order([genres.get(int(m), frozenset()) for m in movies], weight, K)
        rows += [(user, int(movies[i]), float(K - pos)) for pos, i in enumerate(order)]
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "score"])


def list_stats(top: pd.DataFrame, genres: dict[int, frozenset[str]]) -> tuple[float, float]:
    """Mean intra-list diversity and mean distinct genres per list."""
    ild, distinct = [], []
    for _, group in top.groupby("user_id"):
        sets = [genres.get(int(m), frozenset()) for m in group["movie_id"]]
        ild.append(intra_list_diversity(sets))
        distinct.append(len(frozenset().union(*sets)))
    return float(np.mean(ild)), float(np.mean(distinct))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    opts = parser.parse_args(argv)
    root = data_dir()
    if not (root / "ml-100k" / "u.data").is_file():
        message = f"MovieLens 100K not found under {root} (set MOVIELENS_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            print(message, file=sys.stderr)
            return 1
        print(f"skipped: {message}")
        return 0

    from batch.common.spark import build_session

    data = load_ml100k(root)
    genres = movie_genres(root)
    train, test = stratified_split(data)
    users = test["user_id"].unique()
    spark = build_session("recsys-diversity-bench")
    started = time.perf_counter()
    try:
        pool = SparkAls(spark, SERVED).recommend(SERVED[0], train, users, POOL)
    finally:
        spark.stop()
    fit_seconds = time.perf_counter() - started
    print(
        f"ml-100k: train {len(train)}, test {len(test)}, {len(users)} users; "
        f"ALS + top-{POOL} in {fit_seconds:.0f} s",
        flush=True,
    )

    catalogue = int(train["movie_id"].nunique())
    baseline: pd.Series | None = None
    rows = []
    for weight in WEIGHTS:
        t0 = time.perf_counter()
        top = rerank(pool, genres, weight)
        rerank_ms = (time.perf_counter() - t0) * 1e3 / len(users)
        per_user = metrics.ndcg_per_user(test, top, K)
        if baseline is None:
            baseline = per_user
        delta, low, high = paired_bootstrap(per_user, baseline)
        ild, distinct = list_stats(top, genres)
        rows.append(
            {
                "weight": weight,
                "ndcg": metrics.ndcg_at_k(test, top, K),
                "delta": (delta, low, high),
                "precision": metrics.precision_at_k(test, top, K),
                "ild": ild,
                "genres": distinct,
                "coverage": metrics.catalogue_coverage(top, catalogue, K),
                "ms": rerank_ms,
            }
        )
        r = rows[-1]
        print(
            f"  diversity={weight:<4} ndcg@10={r['ndcg']:.4f} ild={ild:.3f} genres={distinct:.2f} "
            f"({rerank_ms:.2f} ms/user)",
            flush=True,
        )

    lines = [
        "# Diversity: the `diversity` weight's trade-off on MovieLens 100K",
        "",
        "`bench/diversity.py` (" + __doc__.split("\n\n")[2].replace("\n", " ") + ")",
        "",
        "Split: " + __doc__.split("Split: ")[1].split("\n\nData:")[0].replace("\n", " "),
        "",
        "| diversity | NDCG@10 | Δ NDCG@10 vs 0 [95 % CI] | P@10 | intra-list diversity | genres per list"
        " | coverage | re-rank ms/user |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        delta, low, high = r["delta"]
        lines.append(
            f"| {r['weight']} | {r['ndcg']:.4f} | {delta:+.4f} [{low:+.4f}, {high:+.4f}] | "
            f"{r['precision']:.4f} | {r['ild']:.3f} | {r['genres']:.2f} | {r['coverage']:.3f} | "
            f"{r['ms']:.2f} |"
        )
    plain = rows[0]
    for budget in (0.01, 0.05):
        within = [r for r in rows if r["ndcg"] >= plain["ndcg"] * (1 - budget)]
        best = max(within, key=lambda r: r["weight"])
        lines.append(
            f"\nWithin {budget:.0%} of weight 0's NDCG@10: up to diversity {best['weight']} "
            f"(intra-list diversity {plain['ild']:.3f} -> {best['ild']:.3f}, "
            f"genres per list {plain['genres']:.2f} -> {best['genres']:.2f})."
        )
    lines += [
        "",
        f"ALS fit, fold-in and top-{POOL} for {len(users)} users: {fit_seconds:.0f} s "
        f"({os.cpu_count()} cores, machine shared with other jobs). The re-rank time is this "
        "script's Python loop per user, the same function the Recommender runs per request.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if opts.out:
        opts.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
