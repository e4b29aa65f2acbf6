"""The scale run (issue #17): the nightly job, serving and the stream at a catalogue's real size.

    .venv/bin/python bench/scale.py [--movies 100000] [--users 1000000] [--interactions 20000000]
                                    [--stage-timeout 3600] [--out bench/scale.md]

Needs the local stack's PostgreSQL, Redis and Kafka (make up); everything else is its own: a
database `recsys_scale` on the stack's server (migrated like the real one), an archive and a
model directory under .stack-scale/. Stages, each the project's own code, each timed:
1. data: a synthetic catalogue and users with latent tastes (rank 16, Zipf popularity): every
   interaction older than the recent window, so it is filed in the Parquet archive as an
   import would file it, and every user's history in `user_items` (what the speed layer and
   serving read). Generated with numpy in chunks; not part of any figure.
2. training: `python -m batch.als.train --stage fit` (Spark ALS on the archive), then
   `--stage evaluate` (the gate) and `--stage publish` (fold-in, top-N and staging in Spark
   tasks, then the switch), each in its own process, with `--stage-timeout`: a stage that does
   not finish in time is stopped and reported as such.
3. serving: a realtime cache miss's database work for random users, through the Recommender's
   own MovieStore (their seen set, then the HNSW top 50 excluding it), p50 / p99.
4. the stream: the real streaming job on this database, 20,000 events of existing users from a
   topic of its own: milliseconds per micro-batch.
5. sizes: PostgreSQL relations and the database; Redis bytes per cached list (bench/capacity.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.dataset as ds

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stream_throughput import produce, stream_until  # noqa: E402
from recommender_svc.store import MovieStore  # noqa: E402
from recsys.db import create_pool  # noqa: E402
from recsys.domain.events import EVENT_SIGNAL, RATE, rating_signal  # noqa: E402
from recsys.domain.vectors import to_array  # noqa: E402
from stack.checks import admin_dsn  # noqa: E402
from stack.config import StackConfig  # noqa: E402

DB = "recsys_scale"
WORK = ROOT / ".stack-scale"
RANK = 16
GENRES = ["Drama", "Comedy", "Thriller", "Action", "Romance", "Adventure", "Crime", "Sci-Fi", "Horror"]
CHUNK_USERS = 50_000


def scale_database(cfg: StackConfig) -> str:
    """A fresh, migrated `recsys_scale` on the stack's server; its URL."""
    with psycopg.connect(admin_dsn(cfg), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DB} OWNER recsys")
    with psycopg.connect(admin_dsn(cfg, DB), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    url = cfg.env["DATABASE_URL"].rsplit("/", 1)[0] + "/" + DB
    subprocess.run(
        [sys.executable, "-m", "recsys.migrate"], env={**os.environ, "DATABASE_URL": url}, check=True
    )
    return url


def generate(url: str, archive: Path, n_movies: int, n_users: int, n_interactions: int, seed: int = 7) -> int:
    """Write the catalogue, the archive and user_items; returns the interactions written."""
    rng = np.random.default_rng(seed)
    item_f = rng.normal(scale=1.0, size=(n_movies, RANK)).astype(np.float32)
    popularity = 1.0 / np.arange(1, n_movies + 1) ** 0.9
    rng.shuffle(popularity)
    cumulative = np.cumsum(popularity / popularity.sum())
    movie_ids = np.arange(1, n_movies + 1, dtype=np.int64)
    with (
        psycopg.connect(url) as conn,
        conn.cursor().copy("COPY movies (movie_id, title, year, genres) FROM STDIN") as copy,
    ):
        for m in movie_ids:
            copy.write_row((int(m), f"Movie {m}", 1950 + int(m) % 75, [GENRES[int(m) % len(GENRES)]]))
    now = np.datetime64(datetime.now(UTC).replace(tzinfo=None), "us")
    written = 0
    mean = n_interactions / n_users
    for start in range(0, n_users, CHUNK_USERS):
        users = np.arange(start + 1, min(start + CHUNK_USERS, n_users) + 1, dtype=np.int64)
        user_f = rng.normal(scale=1.0, size=(len(users), RANK)).astype(np.float32)
        counts = np.clip(rng.geometric(1.0 / mean, size=len(users)), 1, 500)
        candidates = 4 * int(counts.max())
        # Candidates by popularity, then the user's picks among them by taste (Gumbel top-k).
        cand = np.searchsorted(cumulative, rng.random((len(users), candidates)))
        cand = np.minimum(cand, n_movies - 1)
        # Taste strong enough that a model of it beats popularity (the publish gate's floor).
        taste = 3.0 * np.einsum("uk,uck->uc", user_f, item_f[cand]) / np.sqrt(RANK)
        noisy = taste + rng.gumbel(size=taste.shape)
        order = np.argsort(-noisy, axis=1)
        rows_u, rows_m, rows_s = [], [], []
        for i, n in enumerate(counts):
            picked, first = np.unique(cand[i, order[i]], return_index=True)
            keep = picked[np.argsort(first)][:n]
            rows_u.append(np.full(len(keep), users[i]))
            rows_m.append(keep)
            rows_s.append(taste[i, order[i]][np.sort(first)[: len(keep)]])
        u = np.concatenate(rows_u)
        m = movie_ids[np.concatenate(rows_m)]
        affinity = np.concatenate(rows_s) / 3.0
        rating = np.clip(np.round((3.0 + 1.2 * affinity) * 2) / 2, 0.5, 5.0)
        is_rate = rng.random(len(u)) < 0.6
        event_type = np.where(is_rate, RATE, np.where(affinity > 0, "like", "click"))
        ages = rng.uniform(3, 300, size=len(u))  # days: all archived, inside the training year
        occurred = now - pd_days(ages)
        table = pa.table(
            {
                "event_id": pa.array([f"s{start}-{j}" for j in range(len(u))]),
                "user_id": pa.array(u, pa.int64()),
                "movie_id": pa.array(m, pa.int64()),
                "event_type": pa.array(event_type.astype(str)),
                "rating": pa.array(np.where(is_rate, rating, np.nan), pa.float64(), mask=~is_rate),
                "request_id": pa.nulls(len(u), pa.string()),
                "occurred_at": pa.array(occurred, pa.timestamp("us", tz="UTC")),
                "ingested_at": pa.array(occurred, pa.timestamp("us", tz="UTC")),
                "date": pa.array(np.datetime_as_string(occurred.astype("datetime64[D]"))),
            }
        )
        ds.write_dataset(
            table,
            archive,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive"),
            existing_data_behavior="overwrite_or_ignore",
            basename_template=f"part-{start}-{{i}}.parquet",
        )
        # recsys.domain.events.event_signal, vectorised.
        other = np.array([EVENT_SIGNAL.get(t, 0.0) for t in ("like", "click")])
        signals = np.where(is_rate, rating_signal(rating), np.where(affinity > 0, other[0], other[1]))
        with (
            psycopg.connect(url) as conn,
            conn.cursor().copy(
                "COPY user_items (user_id, movie_id, signal, events, ratings, dislikes, last_at) FROM STDIN"
            ) as copy,
        ):
            for row in zip(
                u.tolist(),
                m.tolist(),
                signals.tolist(),
                is_rate.tolist(),
                np.datetime_as_string(occurred, timezone="UTC").tolist(),
                strict=True,
            ):
                copy.write_row((row[0], row[1], row[2], 1, int(row[3]), 0, row[4]))
        written += len(u)
        print(f"  data: {min(start + CHUNK_USERS, n_users):,} users, {written:,} interactions", flush=True)
    return written


def pd_days(days: np.ndarray) -> np.ndarray:
    return (np.asarray(days) * 86_400e6).astype("timedelta64[us]")


def run_stage(
    name: str, command: list[str], env: dict[str, str], timeout: float, log: Path
) -> dict[str, Any]:
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"stage": name, "seconds": None, "outcome": f"stopped after {timeout:.0f} s"}
    seconds = time.perf_counter() - started
    return {"stage": name, "seconds": seconds, "outcome": "ok" if code == 0 else f"exit {code} (see {log})"}


def serve_misses(url: str, n_users: int, samples: int = 200, seed: int = 1) -> dict[str, float]:
    async def run() -> list[float]:
        pool = await create_pool(url, max_size=2)
        store = MovieStore(pool)
        rng = np.random.default_rng(seed)
        times = []
        try:
            for user in rng.integers(1, n_users + 1, size=samples):
                vector = await pool.fetchval(
                    "SELECT preference_vector FROM model_user_factors f JOIN models m "
                    "ON m.version = f.model_version AND m.status = 'live' WHERE f.user_id = $1",
                    int(user),
                )
                if vector is None:
                    continue
                live = await store.live()  # outside the timing: cached in serving
                started = time.perf_counter()
                seen = await store.seen(int(user))
                # As the realtime tier asks: the top 50 under the live model's popularity prior.
                await store.nearest(to_array(vector), seen, [], 50, live)
                times.append((time.perf_counter() - started) * 1e3)
        finally:
            await pool.close()
        return times

    times = asyncio.run(run())
    times.sort()
    return {
        "n": len(times),
        "p50_ms": statistics.median(times),
        "p99_ms": times[int(0.99 * (len(times) - 1))],
    }


def stream(cfg: StackConfig, url: str, n_users: int, work: Path, events: int = 20_000) -> dict[str, Any]:
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = cfg.env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"bench-scale-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
    with psycopg.connect(url) as conn:
        movies = [
            r[0] for r in conn.execute("SELECT movie_id FROM movies WHERE embedding IS NOT NULL LIMIT 5000")
        ]
    rng = np.random.default_rng(2)
    users = range(1, n_users + 1)
    picked = [int(u) for u in rng.choice(np.array(users), size=events // 5, replace=False)]
    produce(bootstrap, topic, picked, events, movies)
    env = {
        **os.environ,
        **cfg.child_env(),
        "DATABASE_URL": url,
        "KAFKA_TOPIC": topic,
        "STACK_DIR": str(work),
        "STREAMING_METRICS_PORT": "0",
    }
    try:
        written = stream_until(env, work, events, 5000, 900)
    finally:
        admin.delete_topics([topic])
    done = written[1:] or written
    return {
        "batches": len(done),
        "events_per_batch": statistics.median(int(b["events"]) for b in done),
        "batch_ms_median": statistics.median(float(b["ms"]) for b in done),
        "events_per_s": sum(int(b["events"]) for b in done) / (sum(float(b["ms"]) for b in done) / 1e3),
    }


def sizes(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC"
        ).fetchall()
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    out = {r[0]: int(r[1]) for r in rows if r[1] > 1_000_000}
    out["(database)"] = int(total[0]) if total else 0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=20_000_000)
    parser.add_argument("--stage-timeout", type=float, default=3600)
    parser.add_argument("--out", default=str(ROOT / "bench" / "scale.md"))
    args = parser.parse_args()

    cfg = StackConfig.load()
    WORK.mkdir(exist_ok=True)
    run = WORK / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    archive, models = run / "archive", run / "models"
    archive.mkdir(parents=True)
    load = os.getloadavg()[0]
    url = scale_database(cfg)
    started = time.perf_counter()
    n = generate(url, archive, args.movies, args.users, args.interactions)
    gen_s = time.perf_counter() - started
    print(f"data: {n:,} interactions in {gen_s:.0f} s", flush=True)

    env = {
        **os.environ,
        **cfg.child_env(),
        "DATABASE_URL": url,
        "ARCHIVE_URI": str(archive),
        "MODEL_DIR": str(models),
        "STACK_DIR": str(run),
        "SPARK_DRIVER_MEMORY": "8g",
    }
    stages = []
    fit = run_stage(
        "train (fit)",
        [sys.executable, "-m", "batch.als.train", "--stage", "fit"],
        env,
        args.stage_timeout,
        run / "fit.log",
    )
    stages.append(fit)
    print(json.dumps(fit), flush=True)
    version = None
    if fit["outcome"] == "ok":
        lines = [x for x in (run / "fit.log").read_text().splitlines() if x.strip() and not x.startswith("{")]
        version = lines[-1].strip() if lines else None
    for stage in ("evaluate", "publish"):
        if version is None:
            break
        if stage == "publish":
            # The gate's verdict is reported; the publish is timed either way.
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT status, metrics FROM models WHERE version = %s", (version,)
                ).fetchone()
                ndcg, floor = row[1].get("ndcg@10", 0), row[1].get("popularity_ndcg@10", 0)
                gate = f"{row[0]} (NDCG@10 {ndcg:.3f}, popularity {floor:.3f})"
                conn.execute("UPDATE models SET status = 'candidate' WHERE version = %s", (version,))
            stages[-1]["outcome"] += f"; gate: {gate}"
        result = run_stage(
            stage,
            [sys.executable, "-m", "batch.als.train", "--stage", stage, "--version", version],
            env,
            args.stage_timeout,
            run / f"{stage}.log",
        )
        stages.append(result)
        print(json.dumps(result), flush=True)
        if result["outcome"] != "ok":
            break
    published = all(s["outcome"].startswith("ok") for s in stages) and len(stages) == 3
    # Right after the publish the page cache holds the lists it wrote, not the index or the
    # users' seen sets: the first pass is a cold database, the second (other users) a warm one.
    misses = [serve_misses(url, args.users, seed=seed) for seed in (1, 2)] if published else []
    streamed = stream(cfg, url, args.users, run) if published else None
    sized = sizes(url)

    lines = [
        "# Scale run (`bench/scale.py`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load:.1f} at the start (2 cores, shared).",
        f"{args.movies:,} movies, {args.users:,} users, {n:,} interactions (generated in {gen_s:.0f} s).",
        "",
        "| stage | seconds | outcome |",
        "|---|---:|---|",
    ]
    for s in stages:
        seconds = "" if s["seconds"] is None else f"{s['seconds']:,.0f}"
        lines.append(f"| {s['stage']} | {seconds} | {s['outcome']} |")
    labels = ("right after the publish (cold cache)", "then other users (warm)")
    for label, miss in zip(labels, misses, strict=False):
        lines += [
            "",
            f"Realtime miss, database work (seen set + HNSW top 50), {label}: "
            f"p50 {miss['p50_ms']:.1f} ms, p99 {miss['p99_ms']:.1f} ms over {miss['n']} users.",
        ]
    if streamed:
        lines += [
            "",
            f"Streaming job (local mode) on this database: {streamed['events_per_s']:,.0f} events/s, "
            f"median micro-batch {streamed['batch_ms_median']:,.0f} ms "
            f"for {streamed['events_per_batch']:,.0f} events.",
        ]
    lines += ["", "| PostgreSQL relation | MB |", "|---|---:|"]
    lines += [f"| {k} | {v / 1e6:,.0f} |" for k, v in sized.items()]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
