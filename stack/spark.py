"""Spark's own standalone cluster in the local stack: a master and SPARK_WORKERS workers.

With SPARK_WORKERS=0 (the default, a 2-core box) every job runs in local mode inside its own
process. With SPARK_WORKERS=N the stack runs Spark's master and N workers, the launchers the
pyspark distribution carries (`bin/spark-class ...deploy.master.Master` / `...worker.Worker`,
in the foreground under supervisord), and every job of the stack (the streaming job, the DAG's
archive and training tasks) is a driver submitting to `spark://127.0.0.1:SPARK_MASTER_PORT`:
its executors run on the workers. Each worker offers SPARK_WORKER_CORES cores and
SPARK_WORKER_MEMORY; an application takes at most SPARK_APP_CORES of them
(`spark.cores.max`), so the long-running streaming job leaves room for the nightly ones.

The master's web UI (and its JSON status, `/json/`) is on SPARK_MASTER_WEBUI_PORT; worker i's
on that port + i.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import checks
from .config import StackConfig

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def spark_home() -> Path:
    """The pyspark package is a Spark distribution: bin/, jars/, conf/."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyspark is not installed")
    return Path(spec.origin).parent


def workers(cfg: StackConfig) -> int:
    return int(cfg.env.get("SPARK_WORKERS", "0") or 0)


def master_url(cfg: StackConfig) -> str:
    return f"spark://127.0.0.1:{cfg.port('SPARK_MASTER_PORT')}"


def webui_port(cfg: StackConfig, worker: int = 0) -> int:
    """The master's UI port (worker 0) or worker i's (the master's + i)."""
    return cfg.port("SPARK_MASTER_WEBUI_PORT") + worker


def env(cfg: StackConfig) -> dict[str, str]:
    """The launchers' environment: Spark's home, logs and work under STACK_DIR, loopback only."""
    return {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(cfg.dir / "spark" / "logs"),
        # Executors start the Python workers of a job with the project's interpreter.
        "PYSPARK_PYTHON": str(cfg.python),
        "SPARK_NO_DAEMONIZE": "1",
    }


def master_command(cfg: StackConfig) -> list[str]:
    return [
        str(spark_home() / "bin" / "spark-class"),
        MASTER_CLASS,
        "--host",
        "127.0.0.1",
        "--port",
        str(cfg.port("SPARK_MASTER_PORT")),
        "--webui-port",
        str(webui_port(cfg)),
    ]


def worker_command(cfg: StackConfig, i: int) -> list[str]:
    work = cfg.dir / "spark" / f"worker-{i}"
    work.mkdir(parents=True, exist_ok=True)
    return [
        str(spark_home() / "bin" / "spark-class"),
        WORKER_CLASS,
        "--host",
        "127.0.0.1",
        "--cores",
        cfg.env.get("SPARK_WORKER_CORES", "2"),
        "--memory",
        cfg.env.get("SPARK_WORKER_MEMORY", "2g"),
        "--webui-port",
        str(webui_port(cfg, i)),
        "--work-dir",
        str(work),
        master_url(cfg),
    ]


def master_status(cfg: StackConfig, port: int | None = None) -> dict[str, Any]:
    """The master's JSON status: its state, workers, running and completed applications."""
    url = f"http://127.0.0.1:{port or webui_port(cfg)}/json/"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return dict(json.loads(resp.read()))
    except OSError as e:
        raise checks.NotReady(f"GET {url}: {e}") from e


def master_ready(cfg: StackConfig) -> str:
    status = master_status(cfg)
    if status.get("status") != "ALIVE":
        raise checks.NotReady(f"spark master is {status.get('status')}")
    return f"spark master ALIVE at {master_url(cfg)} (UI :{webui_port(cfg)})"


def worker_ready(i: int) -> Callable[[StackConfig], str]:
    def ready(cfg: StackConfig) -> str:
        alive = [w for w in master_status(cfg).get("workers", []) if w.get("state") == "ALIVE"]
        mine = [w for w in alive if str(w.get("webuiaddress", "")).endswith(f":{webui_port(cfg, i)}")]
        if not mine:
            raise checks.NotReady(f"worker {i} not registered with the master ({len(alive)} alive)")
        return f"spark worker {i}: {mine[0]['cores']} cores, {mine[0]['memory']} MB"

    return ready


def job_env(cfg: StackConfig) -> dict[str, str]:
    """What every job's driver needs to submit to the cluster (empty in local mode)."""
    if workers(cfg) <= 0:
        return {}
    return {"SPARK_MASTER": master_url(cfg), "PYSPARK_PYTHON": str(cfg.python)}


def _until_ready(probe: Callable[[StackConfig], str], cfg: StackConfig, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe(cfg)
            return
        except checks.NotReady as e:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not ready after {timeout:.0f}s: {e}") from e
        time.sleep(1)


@contextmanager
def cluster(cfg: StackConfig, n_workers: int, timeout: float = 120) -> Iterator[StackConfig]:
    """A master and `n_workers` workers as child processes, for as long as the block runs.

    The same commands supervisord runs for SPARK_WORKERS=N (above), for a test or a benchmark
    that needs a cluster of its own beside the stack: give `cfg` ports and a STACK_DIR of its
    own. Logs go to STACK_DIR/logs/.
    """
    logs = cfg.dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    launch_env = {**os.environ, **env(cfg)}
    try:
        commands = [("master", master_command(cfg))]
        commands += [(f"worker-{i}", worker_command(cfg, i)) for i in range(1, n_workers + 1)]
        for name, command in commands:
            with open(logs / f"{name}.log", "wb") as log:
                procs.append(subprocess.Popen(command, env=launch_env, stdout=log, stderr=log))
            if name == "master":
                _until_ready(master_ready, cfg, timeout, "spark master")
        for i in range(1, n_workers + 1):
            _until_ready(worker_ready(i), cfg, timeout, f"spark worker {i}")
        yield cfg
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
