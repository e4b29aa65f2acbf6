"""Replicas of the recommender and the event service: programs, ports and Envoy's endpoints."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from recsys.auth.devissuer import ensure_keys
from stack import envoy
from stack.config import StackConfig
from stack.core import ports
from stack.programs import enabled


def _cfg(**env: str) -> StackConfig:
    return StackConfig.load({**os.environ, **env})


def _cluster(config: dict, name: str) -> dict:
    return next(c for c in config["static_resources"]["clusters"] if c["name"] == name)


def _endpoint_ports(cluster: dict) -> list[int]:
    return [
        e["endpoint"]["address"]["socket_address"]["port_value"]
        for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]


def test_one_replica_by_default() -> None:
    cfg = _cfg()
    names = [p.name for p in enabled(cfg)]
    assert "recommender" in names and "recommender-2" not in names and "event-2" not in names
    config = yaml.safe_load(envoy.render_text(cfg))
    assert _endpoint_ports(_cluster(config, "recommender")) == [cfg.port("RECOMMENDER_PORT")]


def test_replicas_run_on_their_own_ports_behind_health_checked_endpoints(tmp_path: Path) -> None:
    _, jwks = ensure_keys(tmp_path / "auth")
    cfg = _cfg(RECOMMENDER_REPLICAS="3", EVENT_REPLICAS="2", AUTH_JWKS=str(jwks))
    programs = {p.name: p for p in enabled(cfg)}
    base = cfg.port("RECOMMENDER_PORT")
    metrics = cfg.port("RECOMMENDER_METRICS_PORT")
    assert programs["recommender-2"].env(cfg) == {
        "RECOMMENDER_PORT": str(base + 10),
        "RECOMMENDER_METRICS_PORT": str(metrics + 10),
    }
    assert programs["recommender-3"].env(cfg)["RECOMMENDER_PORT"] == str(base + 20)
    assert programs["event-2"].env(cfg)["EVENT_PORT"] == str(cfg.port("EVENT_PORT") + 10)
    assert "event-3" not in programs
    assert ports(cfg)["recommender-3"] == base + 20

    text = envoy.render_text(cfg)
    # Envoy itself accepts it (the access log's folder must exist for the check).
    (tmp_path / "config.yaml").write_text(text.replace(cfg.env["ENVOY_ACCESS_LOG"], "/dev/null"))
    res = subprocess.run(
        [str(cfg.venv / "bin" / "envoy"), "--mode", "validate", "-c", str(tmp_path / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    config = yaml.safe_load(text)
    rec, ev = _cluster(config, "recommender"), _cluster(config, "event")
    assert _endpoint_ports(rec) == [base, base + 10, base + 20]
    assert _endpoint_ports(ev) == [cfg.port("EVENT_PORT"), cfg.port("EVENT_PORT") + 10]
    for cluster, service in ((rec, "recsys.v1.RecommenderService"), (ev, "recsys.v1.EventService")):
        assert cluster["health_checks"][0]["grpc_health_check"]["service_name"] == service
        assert cluster["outlier_detection"]["consecutive_5xx"] > 0


def test_compose_runs_two_of_each_behind_envoy() -> None:
    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "compose.yaml").read_text())
    for name in ("recommender", "event"):
        assert compose["services"][name]["deploy"]["replicas"] >= 2, name
