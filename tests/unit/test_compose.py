"""compose.yaml, checked without a Docker engine (there is none on the dev machine).

compose-spec is compose-go's validator, the library `docker compose` itself loads files with:
it checks the file against the Compose Specification and prints the normalised model (anchors
merged, paths resolved), which the tests below then check against the repository: every
reference resolves, the services run modules that exist and find each other on the ports they
listen on, and the Envoy config the `envoy-config` service renders passes `envoy --mode validate`.
The model is read without interpolation (compose-spec's command does not pass its environment
to the loader), so `${VAR:?}` references stay as written; the hardening tests rely on that:
only Envoy's public port and the web client are reachable from outside, the rest is on an
internal network, Envoy's admin interface stays on loopback, and no credential is in the file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from recsys.auth.devissuer import ensure_keys
from stack.config import ROOT, StackConfig
from stack.envoy import render_text

COMPOSE = ROOT / "compose.yaml"
# Where `python -m stack install` puts them (STACK_DIR may move .stack/)
COMPOSE_SPEC = StackConfig.load().bin / "compose-spec"
ENVOY = StackConfig.load().venv / "bin" / "envoy"
# The gRPC services: compose service name -> the .env key of the port the service binds.
GRPC_SERVICES = {"recommender": "RECOMMENDER_PORT", "event": "EVENT_PORT", "profile": "PROFILE_PORT"}
# What may be reached from beyond the host's loopback: (service, container port).
PUBLIC = {("envoy", 8080), ("web", 3000)}
# Services that publish a port (public, or operators' UIs on loopback) and so need a network
# that is not internal; every other service is on the internal network only.
EDGE = {"envoy", "web", "jaeger", "grafana", "minio", "airflow", "prometheus"}
# The credentials compose.yaml takes from its environment.
SECRETS = ["POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "GRAFANA_ADMIN_PASSWORD"]


def compose_model(path: Path, interpolate: bool = False) -> dict[str, Any]:
    """The normalised model of a compose file; fails with compose-spec's message."""
    flags = [] if interpolate else ["-no-interpolation"]
    res = subprocess.run(
        [str(COMPOSE_SPEC), *flags, "--format", "json", str(path)],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k not in SECRETS},
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
    # The JWKS is at its container path there (auth-keys makes it); a fresh one stands in here.
    _, jwks = ensure_keys(tmp_path / "auth")
    text = render_text(cfg, descriptor=ROOT / "envoy" / "recsys.pb")
    assert f"filename: {render_env['AUTH_JWKS']} " in text
    config.write_text(text.replace(render_env["AUTH_JWKS"], str(jwks)))
    res = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(config), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert {int(p["target"]) for p in services["envoy"]["ports"]} == {int(defaults["ENVOY_PORT"])}
    assert cfg.env["ENVOY_ADMIN_HOST"] == "127.0.0.1", "Envoy's admin interface must stay on loopback"


def test_only_envoy_and_the_web_client_are_published_beyond_loopback(
    services: dict[str, dict[str, Any]], defaults: dict[str, str]
) -> None:
    exposed = set()
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            if port.get("host_ip") != "127.0.0.1":
                exposed.add((name, int(port["target"])))
            assert int(port["target"]) != int(defaults["ENVOY_ADMIN_PORT"]) or name != "envoy"
    assert exposed == PUBLIC


def test_services_are_on_the_internal_network_only(model: dict[str, Any]) -> None:
    """Everything but the edge (Envoy, the web client, the operators' UIs) is on `backend`,
    an internal network: no traffic to or from outside, nothing on it alone can be published.
    No service is left on compose's default network."""
    networks = model["networks"]
    assert networks["backend"].get("internal") is True
    assert not networks["edge"].get("internal")
    assert "default" not in networks
    for name, svc in model["services"].items():
        joined = set(svc.get("networks") or {})
        if svc.get("network_mode") == "none":
            assert not joined and not svc.get("ports"), name
            continue
        assert "default" not in joined, f"{name} is on compose's default network"
        if name in EDGE:
            assert "edge" in joined and svc.get("ports"), f"{name}: an edge service publishes a port"
            assert joined <= {"backend", "edge"}, name
        else:
            assert joined == {"backend"}, f"{name} must be on the internal network only, is on {joined}"
            assert not svc.get("ports"), f"{name} publishes a port"
    # the web client talks to the browser and to Envoy only
    assert set(model["services"]["web"]["networks"]) == {"edge"}


def _environment_values(raw: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (name, key, str(value))
        for name, svc in raw["services"].items()
        for key, value in (svc.get("environment") or {}).items()
    ]


def test_no_credentials_in_the_file() -> None:
    """Every password, secret, key and database URL password is a `${VAR:?}` reference: compose
    stops when one is missing, and nothing committed holds one."""
    raw = yaml.safe_load(COMPOSE.read_text())  # anchors merged, nothing interpolated
    required = re.compile(r"\$\{([A-Z_]+):\?[^}]*\}")
    checked = 0
    for name, key, value in _environment_values(raw):
        if re.search(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN$|ROOT_USER", key):
            assert required.fullmatch(value), f"{name}: {key} holds a literal credential"
            checked += 1
        if userinfo := re.match(r"\w+://[^/@:]+:([^@]*)@", value):
            assert required.fullmatch(userinfo[1]), f"{name}: {key} has a literal password in its URL"
            checked += 1
    assert checked >= 10
    lines = [line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")]
    referenced = set(required.findall("\n".join(lines)))
    assert referenced == set(SECRETS)
    # commands pass credentials from their environment, not as literals
    assert "recsys-secret" not in COMPOSE.read_text()
    datasource = yaml.safe_load((ROOT / "grafana/provisioning/datasources/postgres.yaml").read_text())
    assert datasource["datasources"][0]["secureJsonData"]["password"] == "$POSTGRES_PASSWORD"


def test_compose_stops_when_a_credential_is_missing() -> None:
    res = subprocess.run(
        [str(COMPOSE_SPEC), "--format", "json", str(COMPOSE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k not in SECRETS},
    )
    assert res.returncode != 0
    for secret in SECRETS:
        assert f"required variable {secret} is missing a value" in res.stdout + res.stderr


def test_a_secrets_file_for_compose_is_ignored_by_git() -> None:
    res = subprocess.run(
        ["git", "check-ignore", "-q", "compose.secrets.env"], cwd=ROOT, capture_output=True, timeout=30
    )
    assert res.returncode == 0, "compose.secrets.env must be in .gitignore"


def test_auth_keys_are_made_for_the_gateway_and_the_services(services: dict[str, dict[str, Any]]) -> None:
    """`auth-keys` makes the key pair (its own volume), the JWKS everyone verifies against and the
    services' own token; the development issuer is off; every verifier can read AUTH_JWKS."""
    keys = services["auth-keys"]
    assert "python -m recsys.auth.devissuer keys" in " ".join(command_of(keys))
    private = {v["source"] for v in keys["volumes"] if v["target"] == "/auth/private"}
    for name, svc in services.items():
        mounts = {v["target"]: v for v in svc.get("volumes") or []}
        if name != "auth-keys":
            assert not any(v["source"] in private for v in mounts.values()), f"{name} mounts the private key"
        env = svc.get("environment") or {}
        if "AUTH_JWKS" not in env:
            continue
        assert env["AUTH_DEV_ISSUER"] == "false", name
        if name in ("auth-keys", "envoy-config"):
            continue
        assert any(env["AUTH_JWKS"].startswith(t + "/") for t in mounts), (
            f"{name} cannot read {env['AUTH_JWKS']}"
        )
        assert (svc.get("depends_on") or {}).get("auth-keys", {}).get("condition") == (
            "service_completed_successfully"
        ), name
    # Envoy reads the JWKS at the path envoy-config renders into its config
    jwks = services["envoy-config"]["environment"]["AUTH_JWKS"]
    assert any(jwks.startswith(v["target"] + "/") for v in services["envoy"]["volumes"])
    for name in GRPC_SERVICES:
        env = services[name]["environment"]
        assert env["GRPC_BIND_HOST"] == "0.0.0.0", f"{name} must listen beyond its container's loopback"
        assert env["SERVICE_TOKEN_FILE"].startswith("/auth/service/")


def test_prometheus_scrapes_every_service_on_its_metrics_port(
    model: dict[str, Any], defaults: dict[str, str]
) -> None:
    """prometheus/prometheus.yml names each service and the port its /metrics has in .env."""
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j["dns_sd_configs"][0] for j in config["scrape_configs"]}
    for name in ("recommender", "event", "profile", "streaming"):
        assert name in model["services"]
        assert jobs[name]["names"] == [name]
        assert jobs[name]["port"] == int(defaults[f"{name.upper()}_METRICS_PORT"]), name


def test_prometheus_scrapes_envoy_stats_on_their_own_listener(
    model: dict[str, Any], defaults: dict[str, str]
) -> None:
    """Envoy's stats come from the listener of ENVOY_METRICS_PORT (only /stats/prometheus there),
    opened to the containers but not published; the admin interface itself stays on loopback."""
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "envoy")
    assert job["metrics_path"] == "/stats/prometheus"
    port = int(defaults["ENVOY_METRICS_PORT"])
    assert job["dns_sd_configs"] == [{"names": ["envoy"], "type": "A", "port": port}]
    services = model["services"]
    assert services["envoy-config"]["environment"]["ENVOY_METRICS_HOST"] == "0.0.0.0"
    assert "ENVOY_ADMIN_HOST" not in services["envoy-config"]["environment"]
    published = [str(p) for p in services["envoy"].get("ports", [])]
    for p in published:
        assert defaults["ENVOY_METRICS_PORT"] not in p and defaults["ENVOY_ADMIN_PORT"] not in p, p
