"""Streaming throughput on Spark's standalone cluster with 1 and 2 workers (issue #17).

    .venv/bin/python bench/stream_throughput.py [--events 80000] [--users 8000] [--batch 20000]

Needs the local stack (Kafka, PostgreSQL, Redis, a live model). For each cluster size it:
1. starts a Spark master and N workers of one core each (stack.spark.cluster, ports of its own);
2. produces `--events` fresh events of `--users` new users to a topic of its own (keyed by user,
   as the Event service does, 4 partitions), so every run does the same, new work;
3. runs the real streaming job (`python -m batch.streaming`) on the cluster against that topic,
   `--batch` records per micro-batch, until every event is stored;
4. reads the job's own "batch written" log lines: events and milliseconds per micro-batch.
Throughput is the events of the full micro-batches over their summed duration; the table gives
2 workers against 1 measured in the same run. Afterwards the bench users' rows are deleted and
the topics removed. Writes bench/stream_throughput.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stack import spark  # noqa: E402
from stack.config import StackConfig  # noqa: E402

PARTITIONS = 4
USER_BASE = 8_100_000_000


def produce(bootstrap: str, topic: str, users: range, n_events: int, movies: list[int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    now_ms = int(time.time() * 1000)
    run = uuid.uuid4().hex[:8]
    for i in range(n_events):
        user = users[i % len(users)]
        event = {
            "event_id": f"bench-{run}-{i}",
            "user_id": user,
            "movie_id": movies[(i * 7919 + user) % len(movies)],
            "event_type": "click",
            "rating": None,
            "request_id": None,
            "occurred_at_ms": now_ms,
            "schema": 1,
        }
        while True:
            try:
                producer.produce(topic, key=str(user).encode(), value=json.dumps(event).encode())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0, "events not delivered"


def batches(log_path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("msg") == "batch written"]


def stream_until(
    env: dict[str, str], work: Path, events: int, per_batch: int, timeout: float
) -> list[dict[str, Any]]:
    """Run the real streaming job (1 s trigger, `per_batch` records a micro-batch, checkpoint and
    log under `work`) until it has written `events` events; its "batch written" log lines."""
    log_path = work / "streaming.log"
    command = [
        sys.executable,
        "-m",
        "batch.streaming",
        "--name",
        "bench",
        "--checkpoint",
        str(work / "checkpoint"),
        "--trigger-seconds",
        "1",
        "--max-offsets-per-trigger",
        str(per_batch),
    ]
    with open(log_path, "wb") as log:
        job = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while sum(int(b["events"]) for b in batches(log_path)) < events:
            if job.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the streaming job stopped or timed out; see {log_path}")
            time.sleep(1)
    finally:
        job.send_signal(signal.SIGTERM)
        try:
            job.wait(timeout=60)
        except subprocess.TimeoutExpired:
            job.kill()
    return batches(log_path)


def run_once(
    stack_cfg: StackConfig, workers: int, args: argparse.Namespace, movies: list[int], users: range
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-stream-{workers}-"))
    cfg = StackConfig.load(
        {
            **os.environ,
            "STACK_DIR": str(work),
            "SPARK_MASTER_PORT": str(args.master_port),
            "SPARK_MASTER_WEBUI_PORT": str(args.master_port + 1000),
            "SPARK_WORKER_CORES": "1",
            "SPARK_WORKER_MEMORY": "1g",
        }
    )
    bootstrap = stack_cfg.env["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"bench-stream-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
    try:
        produce(bootstrap, topic, users, args.events, movies)
        with spark.cluster(cfg, workers):
            env = {
                **os.environ,
                **stack_cfg.child_env(),
                **spark.job_env(cfg),
                "SPARK_MASTER": spark.master_url(cfg),
                "SPARK_APP_CORES": str(workers),
                "KAFKA_TOPIC": topic,
                "STREAMING_METRICS_PORT": "0",  # the stack's own job has the port
                "STACK_DIR": str(work),
            }
            done = stream_until(env, work, args.events, args.batch, args.timeout)
    finally:
        admin.delete_topics([topic])
    # The first micro-batch also starts the executors' Python workers; count full ones after it.
    full = [b for b in done[1:] if int(b["events"]) >= args.batch * 0.9] or done
    events = sum(int(b["events"]) for b in full)
    seconds = sum(float(b["ms"]) for b in full) / 1e3
    return {
        "workers": workers,
        "batches": len(done),
        "measured_batches": len(full),
        "events_per_s": events / seconds,
        "batch_ms_median": sorted(float(b["ms"]) for b in full)[len(full) // 2],
        "first_batch_ms": float(done[0]["ms"]),
    }


def cleanup(database_url: str, users: range) -> None:
    with psycopg.connect(database_url) as conn:
        for table in ("rt_user_interactions", "user_items", "user_profiles"):
            conn.execute(f"DELETE FROM {table} WHERE user_id BETWEEN %s AND %s", (users[0], users[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=80_000)
    parser.add_argument("--users", type=int, default=8_000)
    parser.add_argument("--batch", type=int, default=20_000, help="records per micro-batch")
    parser.add_argument("--master-port", type=int, default=17177)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", default=str(ROOT / "bench" / "stream_throughput.md"))
    args = parser.parse_args()

    stack_cfg = StackConfig.load()
    database_url = stack_cfg.env["DATABASE_URL"]
    with psycopg.connect(database_url) as conn:
        movies = [r[0] for r in conn.execute("SELECT movie_id FROM movies WHERE embedding IS NOT NULL")]
    load = os.getloadavg()[0]
    results = []
    for workers in (1, 2):
        users = range(USER_BASE + workers * 10_000_000, USER_BASE + workers * 10_000_000 + args.users)
        try:
            results.append(run_once(stack_cfg, workers, args, movies, users))
        finally:
            cleanup(database_url, users)
        print(json.dumps(results[-1]), flush=True)
    one, two = results
    ratio = two["events_per_s"] / one["events_per_s"]
    lines = [
        "# Streaming throughput, 1 and 2 Spark workers (`bench/stream_throughput.py`)",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average {load:.1f} at the start; "
        f"{args.events:,} events of {args.users:,} new users per run, {PARTITIONS} Kafka partitions, "
        f"{args.batch:,} records per micro-batch, one core per worker.",
        "",
        "| workers | events/s (full micro-batches) | median batch ms | micro-batches | first batch ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['workers']} | {r['events_per_s']:,.0f} | {r['batch_ms_median']:,.0f} | "
            f"{r['batches']} ({r['measured_batches']} measured) | {r['first_batch_ms']:,.0f} |"
        )
    lines += ["", f"2 workers / 1 worker: **{ratio:.2f}x**", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
