"""The streaming job's heartbeat file: how the stack (and the benchmark) see that it is alive.

The job rewrites `${STACK_DIR}/streaming/status.json` about once a second with its pid and
the last micro-batch's progress, and removes it on a clean stop. No pyspark import here,
so the stack can check readiness cheaply.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STALE_AFTER_SECONDS = 30.0


def status_file(stack_dir: Path, name: str = "streaming") -> Path:
    return stack_dir / name / "status.json"


def write_status(stack_dir: Path, name: str = "streaming", **fields: Any) -> None:
    path = status_file(stack_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "ts": time.time(), **fields}, default=str))
    tmp.replace(path)


def clear_status(stack_dir: Path, name: str = "streaming") -> None:
    status_file(stack_dir, name).unlink(missing_ok=True)


def read_status(stack_dir: Path, name: str = "streaming") -> dict[str, Any]:
    return dict(json.loads(status_file(stack_dir, name).read_text()))


def ready(stack_dir: Path) -> str:
    """A one-line description when the job is streaming; raises RuntimeError otherwise."""
    try:
        status = read_status(stack_dir)
    except (OSError, ValueError) as err:
        raise RuntimeError(f"streaming job has not started its query ({status_file(stack_dir)})") from err
    age = time.time() - float(status["ts"])
    if age > STALE_AFTER_SECONDS:
        raise RuntimeError(f"streaming job heartbeat is {age:.0f}s old (pid {status['pid']})")
    try:
        os.kill(int(status["pid"]), 0)
    except OSError as err:
        raise RuntimeError(f"streaming job pid {status['pid']} is gone") from err
    return (
        f"streaming, trigger {status.get('trigger_seconds')}s, last batch {status.get('batch_id')}, "
        f"{status.get('input_rows_per_second', 0):.0f} rows/s"
    )
