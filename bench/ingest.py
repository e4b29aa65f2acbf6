"""Issue #16 benchmark: batch ingest, request-time freshness, the durable path, a micro-batch's cost.

    .venv/bin/python bench/ingest.py             # the local stack must be up (make up)
    .venv/bin/python bench/ingest.py --skip-durable --seconds 10

In one run, against the local stack, everything through Envoy (REST, service tokens), in
this order (the durable path last: it swaps the streaming job, and the stack's own job
restarting is a minute of Spark start-up that would load the other measurements):
  * request-time freshness: a new user posts 5 ratings (one PostEvents call) of one seeded genre
    cluster and asks at once; the clock runs from the POST's answer until a realtime answer
    whose top 10 is mostly that genre (the first GET, unless something is wrong). Target
    p95 <= 100 ms.
  * sustained ingest with PostEvents (wrk, bench/ingest_batch.lua, BATCH events a request),
    then the same time with the single-event PostEvent (bench/ingest.lua) for comparison:
    events/s made durable (counted in Kafka), POST p50/p99, and the stack's streaming job's
    consumer lag, with the time to drain after the load (target: within two triggers).
    Target >= 5,000 events/s accepted with the batch RPC.
  * durable path: for a 1 s and a 5 s trigger, a new user posts 5 ratings in one PostEvents
    call, the bench deletes the user's pending list (so only the stream can personalise them),
    and the clock runs from the POST's answer until GET recommendations answers from the
    realtime tier, leaning to the genre. Targets: p95 <= 1.5 s (1 s trigger), <= 6 s (5 s).
    The job runs here with `--trigger-seconds T` (bench/freshness.py's OwnStreamingJob);
    meanwhile its heartbeat is sampled for Spark's per-batch durations and its log for the
    driver's own: what a micro-batch costs, and where.
It seeds genre-clustered test movies (ids 910000000+) and removes them at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from freshness import (  # noqa: E402
    OwnStreamingJob,
    committed_offsets,
    percentile,
    topic_end_offsets,
)

from batch.streaming.status import read_status  # noqa: E402
from recsys.config import Settings  # noqa: E402
from recsys.pending import pending_key  # noqa: E402
from stack.auth import token  # noqa: E402
from stack.client import (  # noqa: E402
    connect,
    remove_seeded,
    seed_genre_clusters,
)
from stack.client import http as _http  # noqa: E402
from stack.config import StackConfig  # noqa: E402

USER_BASE = 8_500_000_000


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """The stack is shared (others restart Envoy or a service): a refused call is a failed sample."""
    try:
        return _http(method, url, body)
    except OSError as err:
        return 0, {"error": repr(err)}


def new_user() -> int:
    return USER_BASE + uuid.uuid4().int % 1_000_000_000


def post_ratings(envoy: str, user: int, movies: list[int]) -> float | None:
    """Post 5-star ratings in one PostEvents call; seconds it took, None unless all accepted."""
    started = time.perf_counter()
    status, body = http(
        "POST",
        f"{envoy}/v1/events:batch",
        {"userId": user, "events": [{"movieId": m, "type": "EVENT_TYPE_RATE", "rating": 5} for m in movies]},
    )
    if status != 200 or not isinstance(body, dict) or body.get("accepted") != len(movies):
        print(f"  POST failed: {status} {str(body)[:200]}")
        return None
    return time.perf_counter() - started


def reflects(recs: dict[str, Any], genre: str, genre_of: dict[int, str]) -> bool:
    """A realtime answer whose top 10 is mostly the genre rated."""
    items = recs.get("items") or []
    if not items or items[0]["tier"] != "TIER_REALTIME":
        return False
    ids = [int(i["movie"]["movieId"]) for i in items[:10]]
    return sum(genre_of.get(m) == genre for m in ids) * 2 >= len(ids)


# --- request-time freshness ----------------------------------------------------------------


def request_freshness(envoy: str, clusters: dict[str, list[int]], samples: int) -> dict[str, Any]:
    genre_of = {m: g for g, ids in clusters.items() for m in ids}
    genres = list(clusters)
    latencies: list[float] = []
    posts: list[float] = []
    first_get_ok = 0
    failures = 0
    for i in range(samples + 3):  # the first 3 warm up
        genre = genres[i % len(genres)]
        movies = clusters[genre][(i * 5) % 25 : (i * 5) % 25 + 5]
        user = new_user()
        took = post_ratings(envoy, user, movies)
        if took is None:
            failures += 1
            continue
        answered = time.perf_counter()
        gets = 0
        ok = False
        while time.perf_counter() - answered < 10:
            gets += 1
            status, recs = http("GET", f"{envoy}/v1/users/{user}/recommendations?limit=10")
            if status == 200 and reflects(recs, genre, genre_of):
                ok = True
                break
            time.sleep(0.01)
        if i < 3:
            continue
        if not ok:
            failures += 1
            continue
        latencies.append(time.perf_counter() - answered)
        posts.append(took)
        first_get_ok += gets == 1
    return {"latencies": latencies, "posts": posts, "first_get_ok": first_get_ok, "failures": failures}


# --- the durable path, and what a micro-batch costs ------------------------------------------


class HeartbeatSampler(threading.Thread):
    """Spark's durationMs of each micro-batch, from the job's heartbeat (rewritten every second)."""

    def __init__(self, cfg: StackConfig, name: str) -> None:
        super().__init__(daemon=True)
        self.cfg, self.name = cfg, name
        self.batches: dict[int, dict[str, Any]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                s = read_status(self.cfg.dir, self.name)
                if s.get("batch_id") is not None and s.get("num_input_rows"):
                    self.batches[int(s["batch_id"])] = s.get("duration_ms") or {}
            except (OSError, ValueError):
                pass
            time.sleep(0.3)


def driver_costs(log_path: Path, since: float) -> list[dict[str, float]]:
    """The job's own 'batch written' lines (total ms, and the Spark job of the tasks' per-user work)."""
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        if '"batch written"' not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        out.append({"ms": float(rec["ms"]), "tasks_ms": float(rec["tasks_ms"]), "events": rec["events"]})
    return out


def durable(
    cfg: StackConfig, envoy: str, clusters: dict[str, list[int]], trigger: float, samples: int, cache: Any
) -> dict[str, Any]:
    genre_of = {m: g for g, ids in clusters.items() for m in ids}
    genres = list(clusters)
    latencies: list[float] = []
    misses = 0
    with OwnStreamingJob(cfg, trigger) as job:
        sampler = HeartbeatSampler(cfg, job.name)
        sampler.start()
        log_path = cfg.logs / f"{job.name}.log"
        started_at = time.time()
        for i in range(samples + 1):  # the first warms the job up
            genre = genres[i % len(genres)]
            movies = clusters[genre][(i * 5) % 25 : (i * 5) % 25 + 5]
            user = new_user()
            if post_ratings(envoy, user, movies) is None:
                misses += 1
                continue
            cache.delete(pending_key(user))  # only the stream may personalise this user
            answered = time.perf_counter()
            ok = False
            while time.perf_counter() - answered < 10 * trigger + 10:
                status, recs = http("GET", f"{envoy}/v1/users/{user}/recommendations?limit=10")
                if status == 200 and reflects(recs, genre, genre_of):
                    ok = True
                    break
                time.sleep(0.05)
            if i > 0:
                if ok:
                    latencies.append(time.perf_counter() - answered)
                else:
                    misses += 1
            time.sleep((i % 7) / 7 * trigger)  # spread the samples over the trigger phase
        sampler.stop.set()
        costs = driver_costs(log_path, started_at)
    return {"latencies": latencies, "misses": misses, "spark": sampler.batches, "driver": costs[1:]}


# --- sustained ingest ----------------------------------------------------------------------


def wait_for_stack_job(cfg: StackConfig) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if time.time() - read_status(cfg.dir)["ts"] < 5:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(1)
    raise SystemExit("the stack's streaming job is not running")


def ingest(
    cfg: StackConfig,
    settings: Settings,
    script: str,
    movies: list[int],
    seconds: int,
    connections: int,
    batch: int,
    delay_ms: int = 0,
) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (python -m stack bench-tools)")
    topic, bootstrap = settings.kafka_topic, settings.kafka_bootstrap_servers
    start_offsets = topic_end_offsets(bootstrap, topic)
    lags: list[int] = []
    stop = threading.Event()

    def sample_lag() -> None:
        while not stop.is_set():
            ends = topic_end_offsets(bootstrap, topic)
            done = committed_offsets(cfg, topic)
            if done:
                lags.append(sum(max(0, ends[p] - done.get(p, 0)) for p in ends))
            time.sleep(1)

    sampler = threading.Thread(target=sample_lag, daemon=True)
    sampler.start()
    tokens = [token(cfg, service=f"bench-ingest-{i}", ttl_seconds=3600) for i in range(64)]
    env = {
        **os.environ,
        "MOVIES": ",".join(map(str, movies)),
        "USER_BASE": "7000000000",
        "TOKENS": ",".join(tokens),
        "BATCH": str(batch),
        "DELAY_MS": str(delay_ms),
    }
    lua = str(ROOT / "bench" / script)
    res = subprocess.run(
        [
            wrk,
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            lua,
            cfg.envoy_url,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    load_end = time.monotonic()
    end_offsets = topic_end_offsets(bootstrap, topic)
    produced = sum(end_offsets[p] - start_offsets.get(p, 0) for p in end_offsets)
    drained_after = None
    while time.monotonic() - load_end < 120:
        done = committed_offsets(cfg, topic)
        if done and all(done.get(p, 0) >= o for p, o in end_offsets.items()):
            drained_after = time.monotonic() - load_end
            break
        time.sleep(0.2)
    stop.set()
    out = res.stdout

    def grab(pattern: str) -> float:
        found = re.search(pattern, out)
        if found is None:
            raise SystemExit(f"wrk output without {pattern!r}:\n{out}\n{res.stderr}")
        return float(found.group(1))

    requests = int(grab(r"(\d+) requests in"))
    non2xx = int(grab(r"NON2XX (\d+)"))
    return {
        "requests": requests,
        "non2xx": non2xx,
        "sent_events": (requests - non2xx) * batch,
        "produced": produced,
        "events_per_s": produced / seconds,
        "p50_ms": grab(r"LATENCY_P50_MS ([\d.]+)"),
        "p99_ms": grab(r"LATENCY_P99_MS ([\d.]+)"),
        "max_lag": max(lags) if lags else None,
        "mean_lag": statistics.mean(lags) if lags else None,
        "drained_after_s": drained_after,
    }


# --- report -------------------------------------------------------------------------------


def summary(values: list[float], scale: float = 1.0, unit: str = "s", digits: int = 2) -> str:
    if not values:
        return "no sample"

    def f(v: float) -> str:
        return f"{v * scale:.{digits}f} {unit}"

    p50, p95 = percentile(values, 50), percentile(values, 95)
    return f"p50 {f(p50)}, p95 {f(p95)}, max {f(max(values))}, n={len(values)}"


def report_costs(result: dict[str, Any]) -> None:
    spark = [d for d in result["spark"].values() if d]
    if spark:
        keys = sorted({k for d in spark for k in d})
        parts = [f"{k} {statistics.median(d.get(k, 0) for d in spark):.0f}" for k in keys]
        print(f"    Spark durationMs per batch with input (median of {len(spark)}): " + ", ".join(parts))
    driver = result["driver"]
    if driver:
        print(
            f"    foreachBatch (median of {len(driver)}): "
            f"{statistics.median(d['ms'] for d in driver):.0f} ms, "
            "of which the Spark job of the per-user tasks "
            f"{statistics.median(d['tasks_ms'] for d in driver):.0f} ms "
            f"(the rest: the driver's feedback backfill and item fold-in)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="each ingest run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections, batch run")
    parser.add_argument("--single-connections", type=int, default=32, help="wrk connections, single run")
    parser.add_argument("--batch", type=int, default=250, help="events per PostEvents call")
    parser.add_argument("--samples", type=int, default=40, help="request-time freshness samples")
    parser.add_argument("--durable-samples", type=int, default=20, help="per trigger")
    parser.add_argument("--triggers", default="1,5")
    parser.add_argument("--skip-durable", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-single", action="store_true", help="no PostEvent ingest run")
    parser.add_argument("--delay-ms", type=int, default=0, help="pace the PostEvents run (ingest_batch.lua)")
    args = parser.parse_args()

    cfg = StackConfig.load()
    settings = Settings.from_env()
    envoy = cfg.envoy_url
    cache = redis.Redis.from_url(settings.redis_url)
    conn = connect(settings.database_url)
    clusters = seed_genre_clusters(conn)
    conn.close()
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores, shared box)", flush=True)
    try:
        print(f"request-time freshness: {args.samples} samples ...", flush=True)
        fresh = request_freshness(envoy, clusters, args.samples)
        ingests: dict[str, dict[str, Any]] = {}
        if not args.skip_ingest:
            wait_for_stack_job(cfg)
            movies = [m for ids in clusters.values() for m in ids]
            runs = [("PostEvents", "ingest_batch.lua", args.connections, args.batch)]
            if not args.skip_single:
                runs.append(("PostEvent", "ingest.lua", args.single_connections, 1))
            for kind, script, connections, batch in runs:
                print(f"ingest with {kind}: wrk {connections} connections, {args.seconds} s ...", flush=True)
                ingests[kind] = ing = ingest(
                    cfg, settings, script, movies, args.seconds, connections, batch, args.delay_ms
                )
                print(f"  {ing}", flush=True)
                time.sleep(3)

        durable_results: dict[float, dict[str, Any]] = {}
        if not args.skip_durable:
            for trigger in (float(t) for t in args.triggers.split(",")):
                print(f"durable path, trigger {trigger:g} s: {args.durable_samples} samples ...", flush=True)
                durable_results[trigger] = r = durable(
                    cfg, envoy, clusters, trigger, args.durable_samples, cache
                )
                print(f"  POST answer -> realtime answer: {summary(r['latencies'])}, misses {r['misses']}")
                report_costs(r)

    finally:
        conn = connect(settings.database_url)
        remove_seeded(conn)
        conn.close()

    trigger_s = settings.stream_trigger_seconds
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(
        "request-time freshness "
        "(POST /v1/events:batch answered -> GET answers realtime, leaning to the genre)"
    )
    lat = fresh["latencies"]
    met = "met" if lat and percentile(lat, 95) <= 0.1 else "MISSED"
    print(f"  {summary(lat, 1e3, 'ms', 1)}; target p95 <= 100 ms: {met}")
    print(
        f"  the first GET reflected the events in {fresh['first_get_ok']} of {len(lat)} samples; "
        f"failures {fresh['failures']}; the 5-event POST: {summary(fresh['posts'], 1e3, 'ms', 1)}"
    )
    for trigger, r in durable_results.items():
        target = {1.0: 1.5, 5.0: 6.0}.get(trigger)
        lat = r["latencies"]
        verdict = ""
        if target is not None and lat:
            verdict = f"; target p95 <= {target:g} s: " + (
                "met" if percentile(lat, 95) <= target else "MISSED"
            )
        print(f"durable path, trigger {trigger:g} s: {summary(lat)}, misses {r['misses']}{verdict}")
        report_costs(r)
    for kind, ing in ingests.items():
        drained = ing["drained_after_s"]
        within = (
            ""
            if drained is None
            else (" (within two triggers)" if drained <= 2 * trigger_s else " (NOT within two triggers)")
        )
        lag = "n/a" if ing["max_lag"] is None else f"max {ing['max_lag']} / mean {ing['mean_lag']:.0f}"
        print(
            f"ingest {kind}: {ing['events_per_s']:,.0f} events/s durable in Kafka ({ing['produced']} events, "
            f"{ing['requests']} requests, {ing['non2xx']} non-2xx), POST p50 {ing['p50_ms']:.1f} ms "
            f"p99 {ing['p99_ms']:.1f} ms; consumer lag {lag}; drained "
            + (f"{drained:.1f} s after the load{within}" if drained is not None else "NOT within 120 s")
            + f" (stream trigger {trigger_s:g} s)"
        )


if __name__ == "__main__":
    main()
