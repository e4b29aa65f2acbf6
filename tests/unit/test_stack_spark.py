"""The stack's Spark cluster setting: off by default; N workers = a master, N workers, every job on it."""

from __future__ import annotations

import os

from stack import spark, supervisor
from stack.config import StackConfig
from stack.programs import enabled


def _cfg(**env: str) -> StackConfig:
    return StackConfig.load({**os.environ, **env})


def test_off_by_default_every_job_runs_in_local_mode() -> None:
    cfg = _cfg()
    assert spark.workers(cfg) == 0
    assert not [p for p in enabled(cfg) if p.name.startswith("spark-")]
    assert "SPARK_MASTER" not in cfg.child_env()


def test_two_workers_mean_a_master_two_workers_and_every_job_submitting_to_them(tmp_path) -> None:
    cfg = _cfg(SPARK_WORKERS="2", STACK_DIR=str(tmp_path))
    programs = {p.name: p for p in enabled(cfg)}
    assert [n for n in programs if n.startswith("spark-")] == [
        "spark-master",
        "spark-worker-1",
        "spark-worker-2",
    ]
    assert spark.MASTER_CLASS in programs["spark-master"].command(cfg)
    worker = programs["spark-worker-2"].command(cfg)
    master = f"spark://127.0.0.1:{cfg.port('SPARK_MASTER_PORT')}"
    assert spark.WORKER_CLASS in worker and worker[-1] == master
    assert worker[worker.index("--webui-port") + 1] == str(cfg.port("SPARK_MASTER_WEBUI_PORT") + 2)
    assert cfg.child_env()["SPARK_MASTER"] == master
    ours = [p for p in programs.values() if p.name.startswith("spark-")]
    conf = supervisor.render(cfg, ours).read_text()
    assert "[program:spark-master]" in conf and "[program:spark-worker-2]" in conf
