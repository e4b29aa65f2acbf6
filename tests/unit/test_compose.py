"""compose.yaml, checked without a Docker engine (there is none on the dev machine).

compose-spec is compose-go's validator, the library `docker compose` itself loads files with:
it checks the file against the Compose Specification and prints the normalised model (anchors
merged, paths resolved), which the tests below then check against the repository: every
reference resolves, the services run modules that exist and find each other on the ports they
listen on, and the Envoy config the `envoy-config` service renders passes `envoy --mode validate`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from stack.config import ROOT, StackConfig
from stack.envoy import render_text

COMPOSE = ROOT / "compose.yaml"
# Where `python -m stack install` puts them (STACK_DIR may move .stack/)
COMPOSE_SPEC = StackConfig.load().bin / "compose-spec"
ENVOY = StackConfig.load().venv / "bin" / "envoy"
# The gRPC services: compose service name -> the .env key of the port the service binds.
GRPC_SERVICES = {"recommender": "RECOMMENDER_PORT", "event": "EVENT_PORT", "profile": "PROFILE_PORT"}


def compose_model(path: Path) -> dict[str, Any]:
    """The normalised model of a compose file; fails with compose-spec's message."""
    res = subprocess.run(
        [str(COMPOSE_SPEC), "--format", "json", str(path)],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, f"compose-spec rejects {path.name}: {res.stdout}{res.stderr}"
    model: dict[str, Any] = json.loads(res.stdout)
    return model


def command_of(svc: dict[str, Any]) -> list[str]:
    """A service's command as a list (compose keeps a string command as written)."""
    command = svc.get("command") or []
    return shlex.split(command) if isinstance(command, str) else list(command)


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return compose_model(COMPOSE)


@pytest.fixture(scope="module")
def services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = model["services"]
    return services


@pytest.fixture(scope="module")
def defaults() -> dict[str, str]:
    """.env alone, as the image has it (COPY .env): the test runner's environment may move ports."""
    return StackConfig.load({}).env


def test_the_validator_rejects_what_the_specification_does_not_allow(tmp_path: Path) -> None:
    """The check below means something: a misspelt key fails, naming it."""
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  web:\n    image: nginx\n    portz: ['80:80']\n")
    with pytest.raises(AssertionError, match=r"services\.web\.portz"):
        compose_model(bad)


def test_compose_file_follows_the_specification(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "redis", "kafka", "jaeger", "envoy", "web", "airflow", "grafana"} <= set(services)
    assert set(GRPC_SERVICES) <= set(services)


def test_every_dependency_and_named_volume_is_declared(model: dict[str, Any]) -> None:
    services, volumes = model["services"], set(model.get("volumes") or {})
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on {dep}, which compose.yaml does not define"
        for vol in svc.get("volumes") or []:
            if vol["type"] == "volume":
                assert vol["source"] in volumes, f"{name} mounts undeclared volume {vol['source']}"


def test_bind_mounts_and_builds_point_into_the_repository(services: dict[str, dict[str, Any]]) -> None:
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "Dockerfile").read_text(), re.M))
    for name, svc in services.items():
        for vol in svc.get("volumes") or []:
            if vol["type"] == "bind":
                assert Path(vol["source"]).exists(), f"{name} binds {vol['source']}, which is missing"
        if build := svc.get("build"):
            assert (Path(build["context"]) / build.get("dockerfile", "Dockerfile")).exists()
            assert build.get("target") in stages, f"{name} builds stage {build.get('target')}"


def test_dockerfile_copies_only_what_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is missing"


def test_services_run_modules_and_scripts_that_exist(services: dict[str, dict[str, Any]]) -> None:
    scripts = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
    for name, svc in services.items():
        command = command_of(svc)
        if command[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(command[2]) is not None, f"{name} runs missing {command[2]}"
        shell = " ".join(command[2:]) if command[:2] == ["sh", "-c"] else ""
        for script in re.findall(r"\brecsys-[a-z-]+", shell):
            assert script in scripts, f"{name} runs {script}, which pyproject.toml does not install"
        for module in re.findall(r"python -m ([\w.]+)", shell):
            assert importlib.util.find_spec(module) is not None, f"{name} runs missing {module}"


def test_grpc_addresses_name_a_service_and_the_port_it_binds(
    services: dict[str, dict[str, Any]], defaults: dict[str, str]
) -> None:
    """The services bind .env's ports (compose does not move them); their peers must dial those."""
    seen = 0
    for name, svc in services.items():
        env = svc.get("environment") or {}
        for target, port_key in GRPC_SERVICES.items():
            addr = env.get(f"{target.upper()}_ADDR")
            if addr is None:
                continue
            seen += 1
            host, _, port = addr.rpartition(":")
            assert (host, port) == (target, defaults[port_key]), f"{name}: {target.upper()}_ADDR={addr}"
            assert port_key not in env, f"{name} moves {port_key}; its peers would not follow"
    assert seen >= 3 * 3, "the app services should be told where their peers are"


def test_kafka_init_creates_the_topic_the_services_use(
    services: dict[str, dict[str, Any]], defaults: dict[str, str]
) -> None:
    command = command_of(services["kafka-init"])
    assert command[command.index("--topic") + 1] == defaults["KAFKA_TOPIC"]


def test_envoy_config_rendered_as_compose_does_passes_envoy_validation(
    services: dict[str, dict[str, Any]], defaults: dict[str, str], tmp_path: Path
) -> None:
    """The `envoy-config` service renders the template with its own environment over .env;
    the `envoy` image then loads it. Render it the same way and let this Envoy judge it."""
    render_env = {k: str(v) for k, v in services["envoy-config"]["environment"].items()}
    for key in ("RECOMMENDER_HOST", "EVENT_HOST", "PROFILE_HOST", "WEB_HOST", "OTLP_HOST"):
        assert render_env[key] in services, f"envoy-config: {key}={render_env[key]} is no compose service"
    cfg = StackConfig.load(render_env)
    config = tmp_path / "envoy.yaml"
    config.write_text(render_text(cfg, descriptor=ROOT / "envoy" / "recsys.pb"))
    res = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(config), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    published = {p["target"] for p in services["envoy"]["ports"]}
    assert {int(defaults["ENVOY_PORT"]), int(defaults["ENVOY_ADMIN_PORT"])} <= published
    assert cfg.env["ENVOY_ADMIN_HOST"] == "0.0.0.0", "the published admin port must not be loopback-only"
