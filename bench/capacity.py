"""Unit costs for the capacity model (docs/capacity.md), measured on the running local stack.

    .venv/bin/python bench/capacity.py [--events 20000] [--misses 400] [--out bench/capacity.md]

CPU is counted, not timed: for each program, utime+stime of its process tree from /proc
(supervisord's pid and every descendant: the streaming job's JVM, PostgreSQL's backends)
before and after a measured load, minus what the same programs spend idle over as long
(measured just before), divided by the work done. So a figure holds on a busy box too, while
a latency would not. What it measures:

- per event: `PostEvents` (250 a call) through Envoy until the stream stored every event:
  Envoy, the Event service, Kafka, the streaming job (driver and JVM), PostgreSQL, Redis;
- per cache miss (realtime tier): users with a vector whose cached list is deleted before each
  GET: the recommender, Envoy, PostgreSQL (the HNSW query and the history read), Redis;
- fold-in per user (the speed layer's ALS user step, in process) at 20 / 100 / 500 movies;
- training per million events: the live model's own `train_seconds` and `trained_on`;
- bytes per user and per event: PostgreSQL relation sizes (tables + indexes) over their rows,
  and Redis `MEMORY USAGE` of cached lists.
Cache hits are bench/serving.py's (its CPU per hit columns), not re-measured here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recsys.cache import recommendations_key  # noqa: E402
from stack import procs  # noqa: E402
from stack.auth import token  # noqa: E402
from stack.config import StackConfig, StackError  # noqa: E402

PROGRAMS = ("envoy", "event", "kafka", "streaming", "postgres", "redis", "recommender", "profile")
BATCH = 250


class Cpu:
    """CPU seconds of each program's process tree (stack.procs)."""

    def __init__(self, cfg: StackConfig) -> None:
        try:
            self.roots = procs.program_pids(cfg, PROGRAMS)
        except StackError as e:
            sys.exit(str(e))

    def sample(self) -> dict[str, float]:
        return {name: u.cpu_seconds for name, u in procs.usage(self.roots).items()}


def measure(cpu: Cpu, work: Any) -> tuple[dict[str, float], float, Any]:
    """CPU seconds per program spent by `work()` beyond idle, its wall time, and its result."""
    idle_start = cpu.sample()
    t0 = time.monotonic()
    result = work()
    elapsed = time.monotonic() - t0
    busy = cpu.sample()
    # The idle rate over as long again, right after (the programs' timers, heartbeats, GC).
    time.sleep(min(elapsed, 30.0))
    after = cpu.sample()
    idle_rate = {k: (after[k] - busy[k]) / min(elapsed, 30.0) for k in after}
    spent = {k: max(0.0, busy[k] - idle_start[k] - idle_rate[k] * elapsed) for k in busy}
    return spent, elapsed, result


def http(url: str, tok: str, body: Any = None, method: str = "GET") -> Any:
    req = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json", "authorization": f"Bearer {tok}"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def per_event(cfg: StackConfig, cpu: Cpu, n: int) -> dict[str, float]:
    svc = token(cfg, service="capacity-bench")
    with psycopg.connect(cfg.database_url, autocommit=True) as db:
        movies = [r[0] for r in db.execute("SELECT movie_id FROM movies ORDER BY movie_id LIMIT 500")]
        run = uuid.uuid4().hex[:8]
        base = 8_000_000_000 + uuid.uuid4().int % 1_000_000_000
        rng = np.random.default_rng(7)
        events = [
            {
                "eventId": f"cap-{run}-{i}",
                "userId": str(base + int(rng.integers(0, n // 20 + 1))),
                "movieId": str(movies[int(rng.integers(0, len(movies)))]),
                "type": "EVENT_TYPE_CLICK",
            }
            for i in range(n)
        ]

        def work() -> None:
            for i in range(0, n, BATCH):
                http(f"{cfg.envoy_url}/v1/events:batch", svc, {"events": events[i : i + BATCH]}, "POST")
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                row = db.execute(
                    "SELECT count(*) FROM rt_user_interactions WHERE event_id LIKE %s", (f"cap-{run}-%",)
                ).fetchone()
                if row and row[0] >= n:
                    return
                time.sleep(0.5)
            raise RuntimeError("the stream did not store every event in 600 s")

        spent, elapsed, _ = measure(cpu, work)
    return {k: v / n * 1e3 for k, v in spent.items()} | {"_wall_s": elapsed}


def per_miss(cfg: StackConfig, cpu: Cpu, n: int) -> dict[str, float]:
    svc = token(cfg, service="capacity-bench")
    r = redis.Redis.from_url(cfg.env["REDIS_URL"])
    with psycopg.connect(cfg.database_url) as db:
        users = [
            u
            for (u,) in db.execute(
                "SELECT user_id FROM user_profiles WHERE preference_vector IS NOT NULL "
                "ORDER BY user_id LIMIT %s",
                (n,),
            )
        ]
    if len(users) < n:
        sys.exit(f"only {len(users)} users with a vector (want {n})")
    tiers: dict[str, int] = {}

    def work() -> None:
        for u in users:
            r.delete(recommendations_key(u))
            answer = http(f"{cfg.envoy_url}/v1/users/{u}/recommendations?limit=10", svc)
            tiers[answer.get("tier", "")] = tiers.get(answer.get("tier", ""), 0) + 1

    spent, elapsed, _ = measure(cpu, work)
    return {k: v / n * 1e3 for k, v in spent.items()} | {"_wall_s": elapsed, "_tiers": tiers}  # type: ignore[dict-item]


FOLDIN_SCRIPT = """
import json, sys, time
import numpy as np
from batch import foldin
rng = np.random.default_rng(1)
items = rng.normal(size=(20_000, 64)).astype(np.float32)
g = foldin.gram(items)
step = foldin.UserStep()  # the default step (Rendle's costs the same solve)
out = {}
for k in (20, 100, 500, 2000):
    rows = items[rng.choice(len(items), k, replace=False)]
    signal = rng.uniform(0.5, 3.0, k)
    t0 = time.perf_counter()
    for _ in range(100):
        step.solve(rows, signal, g, len(items))
    out[k] = (time.perf_counter() - t0) / 100 * 1e3
print(json.dumps(out))
"""


def foldin_ms(env: dict[str, str]) -> dict[str, float]:
    """The fold-in's time per user (rank 64, k movies) in a process with `env`'s BLAS threads."""
    run = subprocess.run(
        [sys.executable, "-c", FOLDIN_SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return dict(json.loads(run.stdout))


def storage(cfg: StackConfig) -> dict[str, Any]:
    with psycopg.connect(cfg.database_url) as db:
        sizes = {}
        for table in (
            "rt_user_interactions",
            "user_items",
            "user_profiles",
            "model_user_factors",
            "batch_recommendations",
            "movies",
            "model_item_factors",
            "recommendation_logs",
        ):
            row = db.execute(
                f"SELECT pg_total_relation_size('{table}'), (SELECT count(*) FROM {table})"
            ).fetchone()
            assert row is not None
            sizes[table] = {"bytes": int(row[0]), "rows": int(row[1])}
        row = db.execute("SELECT count(DISTINCT user_id) FROM user_items").fetchone()
        users_with_items = int(row[0]) if row else 0
        live = db.execute(
            "SELECT version, metrics, trained_on FROM models WHERE status = 'live' "
            "ORDER BY published_at DESC LIMIT 1"
        ).fetchone()
    r = redis.Redis.from_url(cfg.env["REDIS_URL"])
    keys = [k for _, k in zip(range(200), r.scan_iter("recs:v1:*", count=500), strict=False)]
    usage = [r.memory_usage(k) or 0 for k in keys]
    return {
        "tables": sizes,
        "users_with_items": users_with_items,
        "live": {"version": live[0], "train_seconds": live[1].get("train_seconds"), "trained_on": live[2]}
        if live
        else None,
        "redis_list_bytes": float(np.mean(usage)) if usage else None,
        "redis_lists_sampled": len(usage),
    }


def report(
    ev: dict[str, Any],
    miss: dict[str, Any],
    fold: dict[str, float],
    fold_threaded: dict[str, float],
    st: dict[str, Any],
    n: int,
    m: int,
) -> str:
    def row(d: dict[str, Any]) -> str:
        return " | ".join(f"{d.get(p, 0):.3f}" for p in PROGRAMS)

    t = st["tables"]

    def per_row(table: str) -> float:
        return t[table]["bytes"] / max(1, t[table]["rows"])

    live = st["live"] or {}
    trained = live.get("trained_on") or {}
    per_m = (live.get("train_seconds") or 0) / max(1, trained.get("events", 0)) * 1e6
    lines = [
        "# Unit costs for the capacity model (`bench/capacity.py`)",
        "",
        "CPU milliseconds per unit of work, beyond each program's idle rate (utime+stime of its",
        "process tree from /proc). docs/capacity.md builds the model from these.",
        "",
        f"| per | {' | '.join(PROGRAMS)} | wall |",
        f"|---|{'---:|' * len(PROGRAMS)}---:|",
        f"| event ({n:,} through PostEvents, 250 a call, until stored) | {row(ev)} | {ev['_wall_s']:.1f} s |",
        f"| cache miss, realtime tier ({m} users, REST) | {row(miss)} | {miss['_wall_s']:.1f} s |",
        "",
        f"Tiers of the misses: {miss['_tiers']}.",
        "",
        "Fold-in (the speed layer's ALS user step, rank 64), with the stack's one BLAS thread: "
        + ", ".join(f"{k} movies {v:.3f} ms" for k, v in fold.items())
        + "; with numpy's default thread per core, on the same busy box: "
        + ", ".join(f"{k} movies {v:.3f} ms" for k, v in fold_threaded.items())
        + ".",
        "",
        f"Training: the live model `{live.get('version')}` trained in {live.get('train_seconds')} s on"
        f" {trained.get('events', 0):,} events ({trained.get('users', 0):,} users,"
        f" {trained.get('movies', 0):,} movies): {per_m:.0f} s per million events in local mode on 2 cores.",
        "",
        "Storage (PostgreSQL: table + indexes + TOAST over rows):",
        "",
        "| table | rows | bytes | bytes per row |",
        "|---|---:|---:|---:|",
        *(f"| {k} | {v['rows']:,} | {v['bytes']:,} | {per_row(k):.0f} |" for k, v in t.items()),
        "",
        f"Users with history: {st['users_with_items']:,}; `user_items` rows per such user:"
        f" {t['user_items']['rows'] / max(1, st['users_with_items']):.1f}.",
        f"Redis: a cached list (`recs:v1:<user>`, 50 items) takes {st['redis_list_bytes'] or 0:.0f} bytes"
        f" (`MEMORY USAGE`, mean of {st['redis_lists_sampled']} keys).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--misses", type=int, default=400)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "capacity.md")
    opts = parser.parse_args()
    cfg = StackConfig.load()
    cpu = Cpu(cfg)
    ev = per_event(cfg, cpu, opts.events)
    print("per event (CPU ms):", {k: round(v, 4) for k, v in ev.items()}, flush=True)
    miss = per_miss(cfg, cpu, opts.misses)
    print("per miss (CPU ms):", miss, flush=True)
    fold = foldin_ms(cfg.child_env())
    # The same with numpy's default of a BLAS thread per core: what the services ran before.
    threaded = {
        k: v for k, v in cfg.child_env().items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    }
    fold_threaded = foldin_ms(threaded)
    st = storage(cfg)
    text = report(ev, miss, fold, fold_threaded, st, opts.events, opts.misses)
    opts.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
