"""Speed-layer benchmark: event-to-fresh-recommendation latency through the stream.

    .venv/bin/python bench/freshness.py          # the local stack must be up (make up)

In one run, against the local stack:
  * freshness with a 1 s and a 5 s trigger: a new user posts 5 ratings through Envoy
    (REST); the clock runs from sending the last event until GET recommendations answers
    from the realtime tier. p50/p95 per trigger (target: p95 <= 2 s with 1 s).
    For each trigger the stack's streaming program is stopped and the job is run here with
    `--trigger-seconds T` on the same checkpoint; the stack's program is started again at
    the end.
Sustained ingest (PostEvent and PostEvents, with the consumer lag) is bench/ingest.py's, which
uses this module's Kafka offset helpers.
It seeds genre-clustered test movies (ids 910000000+) and removes them at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batch.streaming.status import read_status  # noqa: E402
from recsys.config import Settings  # noqa: E402
from recsys.pending import pending_key  # noqa: E402
from stack import supervisor  # noqa: E402
from stack.client import (  # noqa: E402
    connect,
    http,
    remove_seeded,
    seed_genre_clusters,
)
from stack.config import StackConfig  # noqa: E402

POLL_INTERVAL_S = 0.05


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def one_sample(envoy: str, movies: list[int], timeout: float, pending: Any = None) -> float | None:
    """Seconds from sending the last of 5 ratings to a realtime answer; None on failure.

    The stack is shared: a request that fails (a component restarting) voids the sample.
    """
    user = 8_000_000_000 + uuid.uuid4().int % 1_000_000_000
    try:
        for movie in movies[:-1]:
            status, _ = http(
                "POST",
                f"{envoy}/v1/events",
                {"userId": user, "movieId": movie, "type": "EVENT_TYPE_RATE", "rating": 5},
            )
            if status != 200:
                return None
        started = time.perf_counter()
        status, _ = http(
            "POST",
            f"{envoy}/v1/events",
            {"userId": user, "movieId": movies[-1], "type": "EVENT_TYPE_RATE", "rating": 5},
        )
        if status != 200:
            return None
        if pending is not None:
            # The stream's path only: without its pending list, the Recommender cannot fold
            # the user's events in at request time (bench/ingest.py measures that path).
            pending.delete(pending_key(user))
        while time.perf_counter() - started < timeout:
            status, recs = http("GET", f"{envoy}/v1/users/{user}/recommendations?limit=10")
            if status == 200 and recs["items"] and recs["items"][0]["tier"] == "TIER_REALTIME":
                return time.perf_counter() - started
            time.sleep(POLL_INTERVAL_S)
    except OSError:
        return None
    return None


class OwnStreamingJob:
    """The streaming job with a given trigger, in place of the stack's program.

    It runs on a checkpoint of its own from the latest offsets, so it never competes with
    the stack's checkpoint even if someone restarts the stack's program meanwhile (the
    sink is idempotent, so two jobs writing the same events is harmless).
    """

    def __init__(self, cfg: StackConfig, trigger: float) -> None:
        self.cfg, self.trigger = cfg, trigger
        self.name = f"bench-streaming-{trigger:g}s"
        self.checkpoint = cfg.dir / "checkpoints" / self.name

    def stack_job_running(self) -> bool:
        info = supervisor.info(self.cfg, "streaming")
        return bool(info and info["statename"] in ("RUNNING", "STARTING"))

    def stop_stack_job(self) -> None:
        if not self.stack_job_running():
            return
        try:
            supervisor.rpc(self.cfg).supervisor.stopProcess("streaming", False)
        except Exception as err:  # already stopping, or the RPC is slow
            print(f"  (stopping the stack's streaming program: {err})")
        deadline = time.monotonic() + 90
        while self.stack_job_running() and time.monotonic() < deadline:
            time.sleep(0.5)

    def __enter__(self) -> OwnStreamingJob:
        self.stop_stack_job()
        shutil.rmtree(self.checkpoint, ignore_errors=True)
        log = open(self.cfg.logs / f"{self.name}.log", "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batch.streaming",
                "--trigger-seconds",
                f"{self.trigger:g}",
                "--checkpoint",
                str(self.checkpoint),
                "--starting-offsets",
                "latest",
                "--name",
                self.name,
            ],
            cwd=ROOT,
            # The stack's job, stopping, may still hold the metrics port: this one serves none.
            env={**self.cfg.child_env(), "STREAMING_METRICS_PORT": "0"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if read_status(self.cfg.dir, self.name)["pid"] == self.proc.pid:
                    return self
            except (OSError, ValueError, KeyError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"streaming job exited; read {log.name}")
            time.sleep(0.5)
        raise RuntimeError("streaming job did not start in 240 s")

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.checkpoint, ignore_errors=True)
        supervisor.start_program(self.cfg, "streaming")


def freshness(
    cfg: StackConfig, envoy: str, clusters: dict[str, list[int]], trigger: float, samples: int
) -> list[float]:
    genres = list(clusters)
    latencies: list[float] = []
    misses = 0
    pending = redis.Redis.from_url(Settings.from_env().redis_url)
    with OwnStreamingJob(cfg, trigger) as job:
        # warm-up: the first batch after start pays for JIT and connections
        one_sample(envoy, clusters[genres[0]][:5], timeout=60)
        for i in range(samples):
            if job.stack_job_running():
                print("  warning: the stack's streaming program was restarted during the run")
                job.stop_stack_job()
            genre = clusters[genres[i % len(genres)]]
            offset = (i * 5) % (len(genre) - 5)
            result = one_sample(envoy, genre[offset : offset + 5], timeout=10 * trigger + 10, pending=pending)
            if result is None:
                misses += 1
            else:
                latencies.append(result)
            time.sleep((i % 7) / 7 * trigger)  # spread the samples over the trigger phase
    if misses:
        print(f"  {misses} samples timed out")
    return latencies


def topic_end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-freshness-probe"})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    consumer.close()
    return ends


def committed_offsets(cfg: StackConfig, topic: str) -> dict[int, int]:
    """The end offsets of the last batch the job finished (from its heartbeat)."""
    try:
        sources = read_status(cfg.dir).get("sources") or []
    except (OSError, ValueError):
        return {}
    for end in sources:
        if end:
            parsed = json.loads(end) if isinstance(end, str) else end
            return {int(p): int(o) for p, o in parsed.get(topic, {}).items()}
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="freshness samples per trigger")
    parser.add_argument("--triggers", default="1,5")
    args = parser.parse_args()

    cfg = StackConfig.load()
    settings = Settings.from_env()
    envoy = cfg.envoy_url
    conn = connect(settings.database_url)
    clusters = seed_genre_clusters(conn)
    conn.close()

    results: dict[float, list[float]] = {}
    for trigger in (float(t) for t in args.triggers.split(",")):
        print(f"freshness, trigger {trigger:g} s: {args.samples} samples ...", flush=True)
        results[trigger] = freshness(cfg, envoy, clusters, trigger, args.samples)
        lat = results[trigger]
        if lat:
            print(
                f"  p50 {percentile(lat, 50):.2f} s, p95 {percentile(lat, 95):.2f} s, n={len(lat)}",
                flush=True,
            )

    conn = connect(settings.database_url)
    remove_seeded(conn)
    conn.close()

    print()
    print("event -> fresh recommendation (send of the 5th rating -> GET answers TIER_REALTIME)")
    print(f"{'trigger':>8} {'n':>4} {'p50 s':>7} {'p95 s':>7} {'max s':>7}  target")
    for trigger, lat in results.items():
        if not lat:
            print(f"{trigger:>7g}s {0:>4}   (no sample)")
            continue
        target = "p95 <= 2 s: " + ("met" if percentile(lat, 95) <= 2 else "MISSED") if trigger == 1 else ""
        print(
            f"{trigger:>7g}s {len(lat):>4} {percentile(lat, 50):>7.2f} {percentile(lat, 95):>7.2f} "
            f"{max(lat):>7.2f}  {target}"
        )


if __name__ == "__main__":
    main()
