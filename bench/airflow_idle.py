"""What the stack's idle Airflow costs: CPU and memory of its three programs over a while.

    .venv/bin/python bench/airflow_idle.py [SECONDS]      # default 60; the stack must be up

For each program (supervisord's pid) it sums, over the process and all its descendants, the
CPU time /proc reports (utime + stime, plus cutime + cstime: the children that exited and were
waited for, such as the DAG processor's parsing processes) at the start and the end, and the
resident memory at the end. Run it when no DAG run is active, or it measures the run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stack import supervisor  # noqa: E402
from stack.config import StackConfig  # noqa: E402

PROGRAMS = ("airflow-api", "airflow-scheduler", "airflow-dag-processor")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _table() -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, the stat fields after the command name)."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            out[int(d)] = (int(fields[1]), fields)
    return out


def _tree(root: int, table: dict[int, tuple[int, list[str]]]) -> set[int]:
    pids, grew = {root}, True
    while grew:
        new = {p for p, (parent, _) in table.items() if parent in pids} - pids
        pids |= new
        grew = bool(new)
    return pids & set(table)


def _sample(roots: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """program -> (CPU ticks, RSS bytes, processes)."""
    table = _table()
    res = {}
    for name, root in roots.items():
        ticks = rss = 0
        pids = _tree(root, table)
        for pid in pids:
            f = table[pid][1]
            ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
            try:
                rss += int(open(f"/proc/{pid}/statm").read().split()[1]) * PAGE
            except OSError:
                pass
        res[name] = (ticks, rss, len(pids))
    return res


def main(seconds: float) -> None:
    cfg = StackConfig.load()
    roots = {}
    for name in PROGRAMS:
        info = supervisor.info(cfg, name)
        if not info or info["statename"] != "RUNNING":
            sys.exit(f"{name} is not running (make up)")
        roots[name] = int(info["pid"])
    start, t0 = _sample(roots), time.monotonic()
    time.sleep(seconds)
    end, elapsed = _sample(roots), time.monotonic() - t0
    total_cpu = total_rss = 0.0
    for name in PROGRAMS:
        cpu = (end[name][0] - start[name][0]) / TICK / elapsed * 100
        rss = end[name][1] / 2**20
        total_cpu, total_rss = total_cpu + cpu, total_rss + rss
        print(f"{name:24s} {cpu:5.1f} % of one core  {rss:6.0f} MiB RSS  {end[name][2]} processes")
    total = f"{total_cpu:5.1f} % of one core  {total_rss:6.0f} MiB RSS"
    print(f"{'airflow, total':24s} {total}  over {elapsed:.0f} s")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
