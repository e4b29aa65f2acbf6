"""Serving benchmark through Envoy, with the baselines of the same run.

    .venv/bin/python bench/serving.py            # the local stack must be up (make up)

In one run, against the local stack:
  * Envoy direct response (GET /v1/-, wrk: its JSON 404)       - the gateway's own floor
  * raw Redis GET of a cached list (redis-benchmark)           - the cache's floor
  * raw pgvector top-50 query (pgbench, custom script)         - the realtime tier's floor
  * a bare grpc.aio server replaying a recorded hit, behind a second Envoy rendered from the
    gateway's template (ghz, at the hit rate)                  - the gRPC stack's own floor
  * GetRecommendations through Envoy (gRPC, ghz):
      cache hit  at a fixed 500 req/s for 5 minutes (the floor and the REST hits too: a p99
                 target is judged over a window of that length; the p99 of each 30 s window
                 is printed beside it), then at max throughput
      cache miss at a fixed rate over distinct users (their keys flushed), then at max throughput
  * the same cache hits as REST through Envoy's transcoder (wrk, paced by bench/paced_rest.lua)
and prints p50/p99/throughput with ratios against the baselines, plus the CPU seconds the
recommender and Envoy processes spent per request during each run (from /proc/<pid>/stat),
which is far less sensitive to other jobs on the box than the latency percentiles are, and the
load tool's own CPU (it shares the two cores with what it measures).

It seeds its own movies (random embeddings) and users (random vectors, a few interactions)
in id ranges of its own, removes them afterwards, and switches Envoy's per-client rate limit
to not-enforced (admin runtime) for its run only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import grpc
import numpy as np
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recsys.cache import recommendations_key  # noqa: E402
from recsys.config import merged_env  # noqa: E402
from recsys.domain.vectors import EMBEDDING_DIM  # noqa: E402
from recsys.v1 import recommender_service_pb2 as pb  # noqa: E402
from recsys.v1 import recommender_service_pb2_grpc as pb_grpc  # noqa: E402
from stack.auth import token  # noqa: E402
from stack.config import StackConfig  # noqa: E402
from stack.envoy import render_text  # noqa: E402

MOVIE0, USER0 = 920_000_000, 910_000_000
METHOD = "recsys.v1.RecommenderService.GetRecommendations"


def sh(args: list[str], **kw) -> str:
    out = subprocess.run(args, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {out.stderr or out.stdout}")
    return out.stdout


def seed(db: psycopg.Connection, movies: int, users: int) -> None:
    cleanup(db)
    rng = np.random.default_rng(7)
    emb = rng.normal(0, 0.3, size=(movies, EMBEDDING_DIM)).astype(np.float32)
    vecs = rng.normal(0, 1.0, size=(users, EMBEDDING_DIM)).astype(np.float32)
    text = lambda v: "[" + ",".join(f"{x:.5f}" for x in v) + "]"  # noqa: E731
    with db.cursor() as cur:
        with cur.copy("COPY movies (movie_id, title, year, genres, embedding, popularity) FROM STDIN") as cp:
            for i in range(movies):
                cp.write_row((MOVIE0 + i, f"Bench Movie {i}", 2000 + i % 25, ["Bench"], text(emb[i]), 0))
        live = db.execute("SELECT version FROM models WHERE status = 'live'").fetchone()
        with cur.copy("COPY user_profiles (user_id, preference_vector, model_version) FROM STDIN") as cp:
            for u in range(users):
                cp.write_row((USER0 + u, text(vecs[u]), live[0] if live else "bench"))
        with cur.copy(
            "COPY rt_user_interactions (event_id, user_id, movie_id, event_type, occurred_at) FROM STDIN"
        ) as cp:
            for u in range(users):
                for m in rng.integers(0, movies, 5):
                    cp.write_row((uuid.uuid4().hex, USER0 + u, MOVIE0 + int(m), "like", "now"))
    db.execute("ANALYZE movies")


def cleanup(db: psycopg.Connection) -> None:
    users = (USER0, USER0 + 1_000_000)
    db.execute("DELETE FROM rt_user_interactions WHERE user_id >= %s AND user_id < %s", users)
    db.execute("DELETE FROM user_profiles WHERE user_id >= %s AND user_id < %s", users)
    db.execute("DELETE FROM recommendation_logs WHERE user_id >= %s AND user_id < %s", users)
    db.execute("DELETE FROM movies WHERE movie_id >= %s AND movie_id < %s", (MOVIE0, MOVIE0 + 1_000_000))


def flush_keys(r: redis.Redis, users: range) -> None:
    pipe = r.pipeline(transaction=False)
    for u in users:
        pipe.delete(recommendations_key(u))
    pipe.execute()


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on a TCP port (ss -ltnp), None when not found."""
    try:
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    except OSError:
        return None
    m = re.search(r"pid=(\d+)", out)
    return int(m.group(1)) if m else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds per request of named processes over one measured run."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}

    def __enter__(self) -> CpuMeter:
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        self.end = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def per_request_ms(self, n: int) -> dict[str, float]:
        return {name: (self.end[name] - self.start[name]) / max(n, 1) * 1e3 for name in self.pids}


def wait_quiet(max_load: float, max_seconds: int) -> None:
    """Poll the 1-minute load average until it is below max_load (or give up after max_seconds)."""
    deadline = time.monotonic() + max_seconds
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        print(f"  load average {os.getloadavg()[0]:.2f} >= {max_load}, waiting ...", flush=True)
        time.sleep(15)


# Every request carries a service token (it may act for any of the bench's users), as a
# backend calling recsys would: the gateway and the recommender verify it on every call.
AUTHORIZATION: dict[str, str] = {}


def ghz(
    bin_: Path,
    addr: str,
    users: range,
    n: int,
    rps: int,
    concurrency: int,
    meter: CpuMeter | None = None,
    window_seconds: int = 0,
) -> dict:
    """ghz through Envoy; the requests walk `users` round-robin (an array of messages).

    With `window_seconds`, also the p99 of each window of that length (from ghz's per-request
    details): a long run's p99 is the sustained figure, the windows show how steady it was.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json") as data:
        json.dump([{"user_id": str(u), "limit": 20} for u in users], data)
        data.flush()
        args = [str(bin_), "--insecure", "--call", METHOD, "-D", data.name, "-n", str(n)]
        args += ["-c", str(concurrency), "--connections", "4", "--format", "json"]
        args += ["--protoset", str(ROOT / "envoy/recsys.pb")]  # the descriptor set Envoy uses
        args += ["--metadata", json.dumps(AUTHORIZATION)]
        if rps:
            args += ["--rps", str(rps)]
        before = children_cpu()
        with meter if meter is not None else nullcontext():
            report = json.loads(sh([*args, addr]))
        # The load tool shares the two cores with what it measures: its own CPU is printed too.
        ghz_cpu = children_cpu() - before
    lat = {d["percentage"]: d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    errors = sum(v for k, v in (report.get("statusCodeDistribution") or {}).items() if k != "OK")
    windows = window_p99s(report.get("details") or [], window_seconds) if window_seconds else []
    return {
        "windows": windows,
        "p50": lat.get(50),
        "p99": lat.get(99),
        "rps": report["rps"],
        "errors": errors,
        "n": report["count"],
        "cpu": {
            **(meter.per_request_ms(report["count"]) if meter is not None else {}),
            "tool": ghz_cpu / max(report["count"], 1) * 1e3,
        },
    }


_ZONE = re.compile(r"(Z|[+-]\d\d:\d\d)$")


def window_p99s(details: list[dict], window_seconds: int) -> list[float]:
    """The p99 (ms) of each whole window of `window_seconds`, from ghz's per-request details."""
    if not details:
        return []
    # ghz's timestamps are Go's RFC 3339 with up to 9 fraction digits and a zone ("Z" or
    # "+01:00"), one zone for the run: only differences matter, so the zone is dropped.
    stamps = np.array(
        [_ZONE.sub("", d["timestamp"]) for d in details], dtype="datetime64[ns]"
    ).astype(np.int64)
    latency = np.array([d["latency"] for d in details], dtype=np.float64) / 1e6
    window = (stamps - stamps.min()) // (window_seconds * 1_000_000_000)
    ids, counts = np.unique(window, return_counts=True)
    full = ids[counts >= counts.max() / 2]  # not a last, short window
    return [float(np.percentile(latency[window == w], 99)) for w in full]


def children_cpu() -> float:
    """CPU seconds used so far by this process's finished children (the load tools)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wrk(
    url: str,
    seconds: int,
    connections: int,
    *,
    threads: int = 2,
    script: Path | None = None,
    script_env: dict[str, str] | None = None,
    meter: CpuMeter | None = None,
    non_2xx_expected: bool = False,
) -> dict:
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    args += [arg for name, value in AUTHORIZATION.items() for arg in ("-H", f"{name}: {value}")]
    if script is not None:
        args += ["-s", str(script)]
    before = children_cpu()
    with meter if meter is not None else nullcontext():
        out = sh([*args, url], env={**os.environ, **(script_env or {})})
    tool_cpu = children_cpu() - before

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    n = int(re.search(r"(\d+) requests in", out).group(1))
    # wrk counts a 4xx/5xx answer as a request; its summary line says how many there were.
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad and not non_2xx_expected else 0) + (
        sum(int(g) for g in sock.groups()) if sock else 0
    )
    cpu = {**(meter.per_request_ms(n) if meter is not None else {}), "tool": tool_cpu / max(n, 1) * 1e3}
    return {"p50": ms("50"), "p99": ms("99"), "rps": rps, "errors": errors, "n": n, "cpu": cpu}


def rest_hits(envoy: str, users: range, seconds: int, rate: int, meter: CpuMeter) -> dict:
    """Cache hits as REST through Envoy's transcoder, paced at `rate` by bench/paced_rest.lua.

    wrk spends ~0.08 ms of CPU a request where ghz spends ~0.6, so next to the gRPC run it shows
    how much of the tail is the load tool's share of the two cores.
    """
    return wrk(
        f"http://{envoy}",
        seconds,
        16,
        threads=1,  # one schedule: the script's rate is the total rate
        script=ROOT / "bench/paced_rest.lua",
        script_env={"RATE": str(rate), "USER0": str(users.start), "USERS": str(len(users))},
        meter=meter,
    )


def redis_get(port: int, key: str) -> dict:
    out = sh(["redis-benchmark", "-p", str(port), "-n", "100000", "-c", "8", "--csv", "GET", key])
    row = next(csv.DictReader(io.StringIO(out)))
    return {
        "p50": float(row["p50_latency_ms"]),
        "p99": float(row["p99_latency_ms"]),
        "rps": float(row["rps"]),
    }


def pgbench(database_url: str, users: int, seconds: int, clients: int) -> dict:
    script = (
        f"\\set uid random({USER0}, {USER0 + users - 1})\n"
        "BEGIN;\nSET LOCAL hnsw.ef_search = 100;\n"
        "SELECT movie_id, -(embedding <#> p.v) AS score FROM movies,"
        " (SELECT preference_vector AS v FROM user_profiles WHERE user_id = :uid) p"
        " WHERE embedding IS NOT NULL ORDER BY embedding <#> p.v LIMIT 50;\nCOMMIT;\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nearest.sql"
        path.write_text(script)
        out = sh(
            [
                "pgbench",
                "-n",
                "-f",
                str(path),
                "-c",
                str(clients),
                "-j",
                str(clients),
                "-T",
                str(seconds),
                "-l",
                "--log-prefix",
                str(Path(tmp) / "log"),
                database_url,
            ]
        )
        lat = []
        for f in Path(tmp).glob("log*"):
            for line in f.read_text().split("\n"):
                if line:
                    lat.append(int(line.split()[2]) / 1e3)  # microseconds -> ms
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    lat.sort()
    return {"p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99)], "rps": tps}


def runtime(admin: str, key: str, value: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{admin}/runtime_modify?{key}={value}", method="POST"))


def recorded_hit(addr: str, user_id: int) -> bytes:
    """One real cache-hit answer, serialized, for the floor server to replay."""
    with grpc.insecure_channel(addr) as channel:
        resp = pb_grpc.RecommenderServiceStub(channel).GetRecommendations(
            pb.GetRecommendationsRequest(user_id=user_id, limit=20),
            metadata=tuple(AUTHORIZATION.items()),
            timeout=5,
        )
    assert resp.tier == pb.TIER_CACHE, resp.tier
    return resp.SerializeToString()


def three_ports(text: str) -> tuple[int, int, int]:
    """--floor-ports: three comma-separated port numbers."""
    ports = [int(p) for p in text.split(",")]
    if len(ports) != 3:
        raise argparse.ArgumentTypeError(f"expected 3 ports, got {text!r}")
    return ports[0], ports[1], ports[2]


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while listener_pid(port) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start on :{port}")
        time.sleep(0.2)


@contextmanager
def grpc_floor(
    env: dict[str, str], response: bytes, ports: tuple[int, int, int]
) -> Iterator[tuple[str, CpuMeter]]:
    """A bare grpc.aio server replaying `response` (bench/grpc_floor.py) behind a second Envoy
    rendered from the gateway's own template, with the stack's worker count; yields its address
    and a meter of the two processes' CPU.

    The stack's Envoy and recommender stay up but idle while it is measured."""
    floor_port, envoy_port, admin_port = ports
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "hit.bin").write_bytes(response)
        overrides = {
            "RECOMMENDER_PORT": str(floor_port),
            "ENVOY_PORT": str(envoy_port),
            "ENVOY_ADMIN_PORT": str(admin_port),
            "ENVOY_ACCESS_LOG": str(Path(tmp, "access.log")),
        }
        Path(tmp, "envoy.yaml").write_text(render_text(StackConfig.load({**os.environ, **overrides})))
        server = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench/grpc_floor.py"),
                "--port",
                str(floor_port),
                "--response",
                str(Path(tmp, "hit.bin")),
            ]
        )
        envoy = None
        try:
            wait_port(floor_port, server, "bench/grpc_floor.py")
            envoy = subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/envoy"),
                    "-c",
                    str(Path(tmp, "envoy.yaml")),
                    "--disable-hot-restart",
                    "--concurrency",
                    env.get("ENVOY_CONCURRENCY", "1"),
                    "--log-level",
                    "error",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            wait_port(envoy_port, envoy, "the floor's Envoy")
            runtime(f"http://127.0.0.1:{admin_port}", "recsys.ratelimit.enforced", "0")
            yield f"127.0.0.1:{envoy_port}", CpuMeter({"recommender": server.pid, "envoy": envoy.pid})
        finally:
            for proc in (envoy, server):
                if proc is not None:
                    proc.terminate()
                    proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--movies", type=int, default=3000)
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--hit-rps", type=int, default=500)
    parser.add_argument("--miss-rps", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10, help="length of the other runs")
    parser.add_argument(
        "--hit-seconds",
        type=int,
        default=300,
        help="length of the runs at --hit-rps (the floor, the gRPC and the REST hits): their p99 is"
        " the target, measured over 5 minutes, the usual window of a latency SLO; a single 30 s"
        " window's p99 moved by ~1 ms between runs of the same code (bench/serving.md)",
    )
    parser.add_argument(
        "--window-seconds",
        type=int,
        default=30,
        help="the gRPC hit run also reports the p99 of each window of this length",
    )
    parser.add_argument(
        "--floor-ports",
        type=three_ports,
        default="30099,18080,19901",
        help="grpc floor server, its Envoy and that Envoy's admin (free local ports)",
    )
    parser.add_argument("--cleanup", action="store_true", help="only remove the bench's rows")
    parser.add_argument(
        "--wait-load",
        type=float,
        default=0.0,
        help="first wait until the 1-minute load average is below this (0: do not wait)",
    )
    parser.add_argument("--wait-max", type=int, default=900, help="give up waiting after this many seconds")
    args = parser.parse_args()

    env = merged_env()
    bench_token = token(StackConfig.load(), service="bench", ttl_seconds=4 * 3600)
    AUTHORIZATION["authorization"] = f"Bearer {bench_token}"
    envoy = f"127.0.0.1:{env['ENVOY_PORT']}"
    admin = f"http://127.0.0.1:{env['ENVOY_ADMIN_PORT']}"
    ghz_bin = Path(env.get("GHZ", ROOT / ".stack/bin/ghz"))
    for tool in ("wrk", "redis-benchmark", "pgbench"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: .venv/bin/python -m stack bench-tools (make bench runs it)")
    r = redis.Redis.from_url(env["REDIS_URL"])
    db = psycopg.connect(env["DATABASE_URL"], autocommit=True)
    if args.cleanup:
        cleanup(db)
        return
    if args.wait_load:
        wait_quiet(args.wait_load, args.wait_max)
    meter = CpuMeter(
        {
            "recommender": listener_pid(int(env["RECOMMENDER_PORT"])),
            "envoy": listener_pid(int(env["ENVOY_PORT"])),
        }
    )
    loads = [os.getloadavg()[0]]
    print(f"seeding {args.movies} movies and {args.users} users ...", flush=True)
    results: dict[str, dict] = {}
    try:
        seed(db, args.movies, args.users)
        runtime(admin, "recsys.ratelimit.enforced", "0")
        hot = range(USER0, USER0 + 100)
        n_hit = args.hit_rps * args.hit_seconds
        miss_users = args.users // 2
        print("baselines ...", flush=True)
        # The production config has no route of its own for benchmarks: an unmapped API path is
        # answered by Envoy itself (a JSON 404), with no service behind it.
        results["envoy direct (wrk)"] = wrk(f"http://{envoy}/v1/-", args.seconds, 16, non_2xx_expected=True)
        flush_keys(r, hot)
        ghz(ghz_bin, envoy, hot, 200, 0, 8)  # warm the hot users' cache entries
        results["redis GET (redis-benchmark)"] = redis_get(int(env["REDIS_PORT"]), recommendations_key(USER0))
        results["pgvector top-50 (pgbench)"] = pgbench(env["DATABASE_URL"], args.users, args.seconds, 2)

        print("grpc floor ...", flush=True)
        response = recorded_hit(f"127.0.0.1:{env['RECOMMENDER_PORT']}", USER0)
        with grpc_floor(env, response, args.floor_ports) as (floor, floor_cpu):
            results[f"grpc floor @{args.hit_rps}/s"] = ghz(
                ghz_bin, floor, hot, n_hit, args.hit_rps, 16, floor_cpu
            )

        print("through envoy ...", flush=True)
        results[f"cache hit @{args.hit_rps}/s"] = ghz(
            ghz_bin, envoy, hot, n_hit, args.hit_rps, 16, meter, window_seconds=args.window_seconds
        )
        results[f"cache hit REST @{args.hit_rps}/s (wrk)"] = rest_hits(
            envoy, hot, args.hit_seconds, args.hit_rps, meter
        )
        results["cache hit max"] = ghz(ghz_bin, envoy, hot, args.hit_rps * args.seconds * 2, 0, 32, meter)
        misses = range(USER0 + 100, USER0 + 100 + miss_users)
        flush_keys(r, misses)
        n_miss = min(args.miss_rps * args.seconds, miss_users // 2)
        first = range(misses.start, misses.start + n_miss)  # every request a distinct user
        results[f"cache miss @{args.miss_rps}/s"] = ghz(
            ghz_bin, envoy, first, n_miss, args.miss_rps, 16, meter
        )
        rest = range(first.stop, misses.stop)
        results["cache miss max"] = ghz(ghz_bin, envoy, rest, len(rest), 0, 16, meter)
        loads.append(os.getloadavg()[0])
    finally:
        try:
            runtime(admin, "recsys.ratelimit.enforced", "100")
            flush_keys(r, range(USER0, USER0 + args.users))
        finally:
            cleanup(db)

    print(f"\nload average (1 min) at start {loads[0]:.2f}, at end {loads[-1]:.2f} ({os.cpu_count()} cores)")
    # Tracing costs the hit path ~0.04 ms of CPU (bench/serving.md): say how the stack runs it.
    exporter = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "none"
    envoy_pct, ratio = env.get("ENVOY_TRACE_SAMPLING_PERCENT", "?"), env.get("TRACE_SAMPLE_RATIO", "1.0")
    print(f"tracing (settings): exporter {exporter}, Envoy samples {envoy_pct}% of new traces,", end="")
    print(f" services {ratio}")
    print(
        f"\n{'measurement':36} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>9} {'errors':>7}"
        f" {'rec CPU ms/req':>15} {'envoy CPU ms/req':>17} {'tool CPU ms/req':>16}"
    )
    for name, m in results.items():
        cpu = m.get("cpu") or {}
        rec = f"{cpu['recommender']:.3f}" if "recommender" in cpu else "-"
        env_cpu = f"{cpu['envoy']:.3f}" if "envoy" in cpu else "-"
        tool = f"{cpu['tool']:.3f}" if "tool" in cpu else "-"
        print(
            f"{name:36} {m['p50']:8.2f} {m['p99']:8.2f} {m['rps']:9.0f} {m.get('errors', 0):7}"
            f" {rec:>15} {env_cpu:>17} {tool:>16}"
        )
    d, rg, pg = (
        results["envoy direct (wrk)"],
        results["redis GET (redis-benchmark)"],
        results["pgvector top-50 (pgbench)"],
    )
    hit, miss = results[f"cache hit @{args.hit_rps}/s"], results[f"cache miss @{args.miss_rps}/s"]
    rest = results[f"cache hit REST @{args.hit_rps}/s (wrk)"]
    floor = results[f"grpc floor @{args.hit_rps}/s"]
    hmax, mmax = results["cache hit max"], results["cache miss max"]
    print("\nratios (same run)")
    print(f"  cache hit p50 / envoy direct p50     {hit['p50'] / d['p50']:6.1f}x")
    print(f"  cache hit p50 / redis GET p50        {hit['p50'] / rg['p50']:6.1f}x")
    print(f"  cache hit p50 / grpc floor p50       {hit['p50'] / floor['p50']:6.1f}x")
    print(f"  cache hit p99 / grpc floor p99       {hit['p99'] / floor['p99']:6.1f}x")
    print(f"  REST hit p99 (wrk) / gRPC hit p99    {rest['p99'] / hit['p99']:6.1f}x")
    print(f"  cache miss p50 / pgvector p50        {miss['p50'] / pg['p50']:6.1f}x")
    print(f"  cache hit max req/s / envoy direct   {hmax['rps'] / d['rps']:6.3f}")
    print(f"  cache miss max req/s / pgvector tps  {mmax['rps'] / pg['rps']:6.3f}")
    windows = hit["windows"]
    if windows:
        print(
            f"\ncache hit @{args.hit_rps}/s (gRPC), p99 of each {args.window_seconds} s window (ms): "
            + " ".join(f"{w:.2f}" for w in windows)
            + f"\n  over 5 ms: {sum(w > 5.0 for w in windows)} of {len(windows)} windows"
            + f"; median {statistics.median(windows):.2f}, max {max(windows):.2f}"
        )
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(
        f"\ntargets over {args.hit_seconds} s: cache hit p99 <= 5 ms at {args.hit_rps}/s:"
        f" gRPC (ghz) {verdict(hit['p99'] <= 5.0)} ({hit['p99']:.2f} ms),"
        f" REST (wrk) {verdict(rest['p99'] <= 5.0)} ({rest['p99']:.2f} ms);"
        f" cache miss p99 <= 20 ms: {verdict(miss['p99'] <= 20.0)} ({miss['p99']:.2f} ms)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
