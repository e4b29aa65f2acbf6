"""`python -m batch.als.train`: train, evaluate, gate, publish and invalidate, or one stage.

    python -m batch.als.train                     # the whole job (what `make up`'s hook runs
    python -m batch.als.train --first-run         #   with --first-run: no-op if a model is live)
    python -m batch.als.train --stage fit         # DAG task "train": prints the new version
    python -m batch.als.train --stage evaluate --version V   # metrics + gate -> candidate|rejected
    python -m batch.als.train --stage publish --version V    # stage rows + atomic switch
    python -m batch.als.train --stage invalidate              # drop cached lists

Extract: the `--days` days up to the newest event, from the archive and PostgreSQL (batch.als.data).
Transform: event signals (recsys.domain.events) -> a deterministic 80/20 holdout of (user, movie)
pairs -> Spark implicit ALS on the 80 % (batch.als.model). Evaluate: the new and the live
model's item factors on the same holdout (batch.als.score_holdout, in Spark tasks; a sample of
the holdout users beyond `--eval-users`); the new one is `rejected` when
its NDCG@10 does not beat popularity's on that holdout, or is below the live one's minus
`--tolerance`. Load: the artifact under
MODEL_DIR/<version>/, then batch.als.publish. Published user vectors are folded in from ALL of
a user's interactions (the holdout included) onto the trained item factors.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from batch.als import publish
from batch.als.metrics import Totals
from batch.als.model import AlsParams, collect_factors, pad, to_pandas
from recsys import coldstart, windows
from recsys.config import Settings
from recsys.domain.recency import check_weight
from recsys.logs import setup_logging

log = logging.getLogger("batch.als.train")

TOP_N = 50
HOLDOUT_PERCENT = 20
PAIRS = "pairs.parquet"  # a version's (user, movie, strength, is_holdout): what it learned from
COVISITS = "covisits.parquet"  # its co-visits (batch.als.covisit), from every event of the window
EVAL_K = 10
# The gate scores at most about this many holdout users (a deterministic sample beyond it).
EVAL_USERS = 50_000
# The gate's allowance for noise: a new model within this NDCG@10 of the live one passes.
DEFAULT_TOLERANCE = 0.005


def new_version(now: datetime | None = None) -> str:
    return "als-" + (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")[:-4]


def version_time(version: str) -> datetime | None:
    """When a version's training started (new_version's name); None for another name."""
    try:
        return datetime.strptime(version.removeprefix("als-"), "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    except ValueError:
        return None


def artifact_dir(settings: Settings, version: str) -> Path:
    return Path(settings.model_dir) / version


def fit_stage(settings: Settings, params: AlsParams, days: int) -> str | None:
    """Extract, fit on the 80 %, save the artifact; record the model as `candidate`-to-be."""
    from pyspark.sql import functions as F

    from batch.als.covisit import covisits
    from batch.als.data import extract_events, mark_holdout
    from batch.als.model import fit_implicit, interaction_strengths
    from batch.common.spark import build_session

    version = new_version()
    out = artifact_dir(settings, version)
    started = time.perf_counter()
    spark = build_session("recsys-als-train")
    try:
        extract = extract_events(spark, settings.database_url, settings.archive_uri, days)
        if extract is None:
            log.warning("no interactions at all: nothing to train")
            return None
        events = extract.events.cache()
        n_events = events.count()
        pairs = mark_holdout(interaction_strengths(events), HOLDOUT_PERCENT).cache()
        train = pairs.where(~F.col("is_holdout")).drop("is_holdout").cache()
        model = fit_implicit(train, params)
        factors = collect_factors(model)
        out.mkdir(parents=True, exist_ok=True)
        model.write().overwrite().save(str(out / "als"))
        popularity = to_pandas(
            pairs.where(F.col("strength") > 0).groupBy("movie_id").agg(F.count("*").alias("popularity"))
        )
        items = pd.DataFrame({"movie_id": factors.item_ids}).merge(popularity, on="movie_id", how="left")
        items["popularity"] = items["popularity"].fillna(0).astype(np.int64)
        np.save(out / "item_factors.npy", factors.item_factors)
        items.to_parquet(out / "items.parquet")
        # Every pair with its holdout flag, written by the executors (the evaluation and the
        # publish read it back in Spark): at scale, never through the driver.
        pairs.write.parquet(str(out / PAIRS))
        # Every event, the holdout's too: the gate scores factors, not co-visits, and serving
        # should know the latest sequences.
        covisits(events).write.parquet(str(out / COVISITS))
        # What the model learned from, for anyone who asks what a version was trained on:
        # events once each (a row archived but not yet deleted is in both sources).
        trained_on = {
            "events": n_events,
            "events_archive": extract.from_archive,
            "events_postgres": extract.from_postgres,
            "pairs": pairs.count(),
            "users": len(factors.user_ids),
            "movies": len(factors.item_ids),
            "days": days,
            "since": extract.window.since.isoformat(),
            "until": extract.window.until.isoformat(),
        }
    finally:
        spark.stop()
    seconds = time.perf_counter() - started
    metrics: dict[str, Any] = {"train_seconds": round(seconds, 2)}
    with publish.connect(settings.database_url) as conn:
        cold_start = fit_cold_start(conn, factors.item_ids, factors.item_factors)
        if cold_start is not None:
            (out / "cold_start.json").write_text(json.dumps(cold_start))
        publish.record_model(
            conn,
            version,
            "training",
            params.as_dict(),
            metrics,
            str(out.resolve()),
            trained_on,
            cold_start=cold_start,
        )
    (out / "meta.json").write_text(json.dumps({"version": version, "params": params.as_dict()}))
    log.info("trained", extra={"version": version, "seconds": round(seconds, 1), **trained_on})
    return version


def fit_cold_start(
    conn: psycopg.Connection[Any], item_ids: np.ndarray, item_factors: np.ndarray
) -> dict[str, Any] | None:
    """The version's genre/year -> item-factor map (recsys.coldstart), fitted on the movies it
    learned, as JSON for `models.cold_start`; None when no trained movie is in the catalogue."""
    rows = conn.execute(
        "SELECT movie_id, genres, year FROM movies WHERE movie_id = ANY(%s)", ([int(m) for m in item_ids],)
    ).fetchall()
    known = {r[0]: (list(r[1] or ()), r[2]) for r in rows}
    at = [i for i, m in enumerate(item_ids) if int(m) in known]
    if not at:
        return None
    genres = [known[int(item_ids[i])][0] for i in at]
    years = [known[int(item_ids[i])][1] for i in at]
    return coldstart.fit(genres, years, np.asarray(item_factors)[at]).to_json()


def evaluate_stage(settings: Settings, version: str, tolerance: float, max_users: int = EVAL_USERS) -> str:
    """Metrics of the new and the live model on the new one's holdout; gate -> status."""
    from batch.als.evaluate import gate, with_sizes
    from batch.als.score_holdout import POPULARITY, Scored, score_in_spark
    from batch.common.spark import build_session

    out = artifact_dir(settings, version)
    params = AlsParams.from_dict(json.loads((out / "meta.json").read_text())["params"])
    items = pd.read_parquet(out / "items.parquet")["movie_id"].to_numpy()
    models = [
        Scored(
            version, items, np.load(out / "item_factors.npy"), params.user_step,
            params.popularity_boost,
        )
    ]
    with publish.connect(settings.database_url) as conn:
        live = publish.live_model(conn)
        if live is not None and live.version != version:
            live_ids, live_factors = publish.staged_items(conn, live.version)
            live_params = AlsParams.from_dict(live.params)
            if len(live_ids):
                models.append(
                    Scored(
                        live.version, live_ids, live_factors, live_params.user_step,
                        live_params.popularity_boost,
                    )
                )
    spark = build_session("recsys-als-evaluate")
    try:
        scored = score_in_spark(
            spark,
            out / PAIRS,
            models,
            items,
            k=EVAL_K,
            max_users=max_users,
            partitions=2 * spark.sparkContext.defaultParallelism,
        )
    finally:
        spark.stop()

    def ndcg(name: str) -> float:
        return scored.totals.get(name, Totals()).as_metrics(EVAL_K)[f"ndcg@{EVAL_K}"]

    new = scored.totals.get(version, Totals())
    metrics: dict[str, Any] = with_sizes(new.as_metrics(EVAL_K, catalogue_size=len(items)), new)
    metrics["holdout_users_sampled"] = scored.sampled
    metrics[f"popularity_ndcg@{EVAL_K}"] = ndcg(POPULARITY)
    live_ndcg = None
    if len(models) > 1:
        metrics["live_version"] = models[1].name
        live_ndcg = metrics[f"live_ndcg@{EVAL_K}"] = ndcg(models[1].name)
    status = gate(metrics[f"ndcg@{EVAL_K}"], metrics[f"popularity_ndcg@{EVAL_K}"], live_ndcg, tolerance)
    metrics["gate_tolerance"] = tolerance
    with publish.connect(settings.database_url) as conn:
        publish.record_model(conn, version, status, metrics=metrics)
    log.info("evaluated", extra={"version": version, "status": status, **metrics})
    return status


def publish_stage(settings: Settings, version: str) -> bool:
    """Stage the version's rows and switch to it, if the gate passed it.

    The item rows are staged from here; the users' fold-in, top-N and rows in Spark tasks
    (batch.als.stage_users); then one switch.
    """
    from batch.als.stage_users import VersionItems, stage_users_in_spark
    from batch.common.spark import build_session

    out = artifact_dir(settings, version)
    with publish.connect(settings.database_url) as conn:
        row = publish.get_model(conn, version)
        if row is None or row.status not in ("candidate", "live"):
            log.info("not published", extra={"version": version, "status": row and row.status})
            return False
        params = AlsParams.from_dict(row.params)
        items = pd.read_parquet(out / "items.parquet")
        item_factors = np.load(out / "item_factors.npy")
        publish.stage_items(conn, version, items, pad(item_factors))
        if (out / COVISITS).exists():  # a version trained before co-visits has none
            publish.stage_covisits(conn, version, pd.read_parquet(out / COVISITS))
        catalogue = publish.catalogue_ids(conn)
    spark = build_session("recsys-als-publish")
    try:
        users, lists = stage_users_in_spark(
            spark,
            settings.database_url,
            version,
            out / PAIRS,
            VersionItems(
                items["movie_id"].to_numpy(), item_factors, catalogue, params.user_step, TOP_N,
                items["popularity"].to_numpy(), params.popularity_boost,
            ),
            partitions=2 * spark.sparkContext.defaultParallelism,
        )
    finally:
        spark.stop()
    with publish.connect(settings.database_url) as conn:
        old = publish.switch(conn, version)
        dropped = publish.prune(conn)
    log.info(
        "published",
        extra={"version": version, "previous": old, "pruned": dropped, "users": users, "lists": lists},
    )
    for stale in dropped:
        shutil.rmtree(artifact_dir(settings, stale), ignore_errors=True)
    return True


def invalidate_stage(settings: Settings) -> int:
    n = publish.invalidate_cache(settings.redis_url)
    log.info("cache invalidated", extra={"deleted": n})
    return n


def parse_params(raw: str | None, first_run: bool, source: str = "--params") -> AlsParams:
    """The defaults with the JSON overrides of `source` (--params, or the ALS_PARAMS setting)."""
    params = AlsParams()
    if first_run:  # make up: fast on 2 cores; the nightly run trains the full model
        params = replace(params, rank=32, max_iter=8)
    if raw:
        try:
            overrides = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source} is not JSON: {e}") from None
        if not isinstance(overrides, dict):
            raise ValueError(f"{source} must be a JSON object of AlsParams fields, got {raw!r}")
        unknown = sorted(set(overrides) - set(AlsParams.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{source} names unknown AlsParams fields: {', '.join(unknown)}")
        for weight in ("recent_weight", "sequence_weight"):
            if weight in overrides:
                check_weight(overrides[weight], f"{source} {weight}")
        params = AlsParams.from_dict({**params.as_dict(), **overrides})
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--stage", choices=["all", "fit", "evaluate", "publish", "invalidate"], default="all")
    parser.add_argument("--version", help="the model version (evaluate, publish)")
    parser.add_argument("--params", help='JSON overriding ALS params, e.g. \'{"rank": 32}\'')
    parser.add_argument(
        "--days",
        type=int,
        default=windows.TRAINING_DAYS,
        help="training window, back from the newest event (default %(default)s)",
    )
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument(
        "--eval-users",
        type=int,
        default=EVAL_USERS,
        help="the gate scores a deterministic sample of about this many holdout users (default %(default)s)",
    )
    parser.add_argument(
        "--first-run", action="store_true", help="do nothing if a model is already live (make up)"
    )
    opts = parser.parse_args(argv)
    settings = Settings.from_env()
    setup_logging("batch-als", settings.log_level)

    if opts.first_run:
        with publish.connect(settings.database_url) as conn:
            live = publish.live_model(conn)
        if live is not None:
            log.info("a model is live already; first run skipped", extra={"version": live.version})
            return 0
    if opts.eval_users < 1:
        parser.error("--eval-users must be at least 1")
    if opts.stage in ("evaluate", "publish") and not opts.version:
        parser.error(f"--stage {opts.stage} needs --version")

    def params() -> AlsParams:
        try:
            if opts.params:
                return parse_params(opts.params, opts.first_run)
            return parse_params(settings.als_params, opts.first_run, source="ALS_PARAMS")
        except ValueError as e:
            parser.error(str(e))

    if opts.stage == "fit":
        version = fit_stage(settings, params(), opts.days)
        print(version or "", flush=True)
        return 0
    if opts.stage == "evaluate":
        print(evaluate_stage(settings, opts.version, opts.tolerance, opts.eval_users), flush=True)
        return 0
    if opts.stage == "publish":
        publish_stage(settings, opts.version)
        return 0
    if opts.stage == "invalidate":
        invalidate_stage(settings)
        return 0

    version = fit_stage(settings, params(), opts.days)
    if version is None:
        return 0
    status = evaluate_stage(settings, version, opts.tolerance, opts.eval_users)
    if status == "candidate" and publish_stage(settings, version):
        invalidate_stage(settings)
    print(f"{version} {status if status == 'rejected' else 'live'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
