"""What the stack's idle Airflow costs: CPU and memory of its three programs over a while.

    .venv/bin/python bench/airflow_idle.py [SECONDS]      # default 60; the stack must be up

For each program (supervisord's pid) it sums, over the process and all its descendants, the
CPU time /proc reports (utime + stime, plus cutime + cstime: the children that exited and were
waited for, such as the DAG processor's parsing processes) at the start and the end, and the
resident memory at the end. Run it when no DAG run is active, or it measures the run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stack import procs  # noqa: E402
from stack.config import StackConfig, StackError  # noqa: E402

PROGRAMS = ("airflow-api", "airflow-scheduler", "airflow-dag-processor")


def main(seconds: float) -> None:
    try:
        roots = procs.program_pids(StackConfig.load(), PROGRAMS)
    except StackError as e:
        sys.exit(str(e))
    start, t0 = procs.usage(roots), time.monotonic()
    time.sleep(seconds)
    end, elapsed = procs.usage(roots), time.monotonic() - t0
    total_cpu = total_rss = 0.0
    for name in PROGRAMS:
        cpu = (end[name].cpu_seconds - start[name].cpu_seconds) / elapsed * 100
        rss = end[name].rss_bytes / 2**20
        total_cpu, total_rss = total_cpu + cpu, total_rss + rss
        print(f"{name:24s} {cpu:5.1f} % of one core  {rss:6.0f} MiB RSS  {end[name].processes} processes")
    total = f"{total_cpu:5.1f} % of one core  {total_rss:6.0f} MiB RSS"
    print(f"{'airflow, total':24s} {total}  over {elapsed:.0f} s")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
