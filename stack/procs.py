"""What the stack's programs cost, from /proc: CPU time and memory of a process and its descendants.

A program is supervisord's pid and everything it started (the streaming job's JVM, PostgreSQL's
backends, the Airflow scheduler's task processes). CPU counts utime + stime of each process, plus
cutime + cstime: the children that already exited and were waited for. Benchmarks count CPU per
unit of work this way (bench/capacity.py, bench/airflow_idle.py), which holds on a busy box
where a latency would not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import supervisor
from .config import StackConfig, StackError

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _table() -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, the stat fields after the command name)."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
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


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    rss_bytes: int
    processes: int


def usage(roots: dict[str, int]) -> dict[str, Usage]:
    """name -> the CPU seconds so far, resident memory and process count of the root's tree."""
    table = _table()
    out = {}
    for name, root in roots.items():
        ticks = rss = 0
        pids = _tree(root, table)
        for pid in pids:
            f = table[pid][1]
            ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
            try:
                with open(f"/proc/{pid}/statm") as statm:
                    rss += int(statm.read().split()[1]) * PAGE
            except OSError:
                pass
        out[name] = Usage(ticks / TICK, rss, len(pids))
    return out


def program_pids(cfg: StackConfig, names: tuple[str, ...]) -> dict[str, int]:
    """supervisord's pid of each running program; a program that is not running is an error."""
    pids = {}
    for name in names:
        info = supervisor.info(cfg, name)
        if not info or info["statename"] != "RUNNING":
            raise StackError(f"{name} is not running (make up)")
        pids[name] = int(info["pid"])
    return pids
