"""Settings for the local stack: `.env` defaults, environment overrides, derived URLs.

Stdlib only: `python -m stack install` imports this before .venv exists.

Every setting in `.env` can be overridden from the environment; `${NAME}` in a value refers to
another setting, so `POSTGRES_PORT=15432 make up` moves DATABASE_URL too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# recsys.config is standard-library only, so this works before .venv exists.
from recsys.config import MissingSettingError, merged_env, read_env_file

ROOT = Path(__file__).resolve().parent.parent


class StackError(RuntimeError):
    """A stack step failed; the message names the component and the log file to read."""


def load_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The merged settings of recsys.config (.env, the environment on top, `${NAME}` references
    expanded), limited to the keys .env names: that is what every program of the stack gets."""
    try:
        env = merged_env(environ, ROOT / ".env")
        return {k: env[k] for k in read_env_file(ROOT / ".env")}
    except MissingSettingError as e:
        raise StackError(str(e)) from None


@dataclass(frozen=True)
class StackConfig:
    """Everything the stack needs to know; `env` is what every program gets."""

    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, environ: dict[str, str] | None = None) -> StackConfig:
        return cls(env=load_env(environ))

    # --- paths -------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return ROOT

    @property
    def dir(self) -> Path:
        d = Path(self.env.get("STACK_DIR", ".stack"))
        return d if d.is_absolute() else ROOT / d

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def venv(self) -> Path:
        return ROOT / ".venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def bin(self) -> Path:
        """Tools the stack installs itself (grpcurl, ghz)."""
        return self.dir / "bin"

    # --- settings ----------------------------------------------------------------------
    def port(self, key: str) -> int:
        try:
            return int(self.env[key])
        except KeyError:
            raise StackError(f"setting {key} is missing (.env or environment)") from None

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    @property
    def postgres_port(self) -> int:
        return urlsplit(self.database_url).port or self.port("POSTGRES_PORT")

    @property
    def disabled(self) -> set[str]:
        """STACK_DISABLE=name,name: programs or bootstrap steps to skip (for partial stacks)."""
        raw = os.environ.get("STACK_DISABLE", self.env.get("STACK_DISABLE", ""))
        return {p.strip() for p in raw.split(",") if p.strip()}

    @property
    def envoy_url(self) -> str:
        return f"http://127.0.0.1:{self.port('ENVOY_PORT')}"

    @property
    def envoy_admin_url(self) -> str:
        return f"http://127.0.0.1:{self.port('ENVOY_ADMIN_PORT')}"

    def child_env(self) -> dict[str, str]:
        """The environment of every program: the settings, absolute dirs, tools on PATH."""
        env = dict(self.env)
        env["STACK_DIR"] = str(self.dir)
        for key in ("ARCHIVE_URI", "MODEL_DIR", "AUTH_JWKS", "AUTH_DEV_SIGNING_KEY", "SERVICE_TOKEN_FILE"):
            if env.get(key) and "://" not in env[key] and not Path(env[key]).is_absolute():
                env[key] = str(ROOT / env[key])
        env["PATH"] = os.pathsep.join(
            [str(self.venv / "bin"), str(self.bin), os.environ.get("PATH", "/usr/bin:/bin")]
        )
        env["PYTHONUNBUFFERED"] = "1"
        # Read by the stack alone (which programs run, Envoy's endpoints): out of the programs'
        # environment, so changing them restarts only what they change.
        for key in STACK_ONLY:
            env.pop(key, None)
        from .spark import job_env  # a cluster, when the stack runs one, is every job's master

        env.update(job_env(self))
        return env


# The services the stack can run several processes of (their settings' prefix).
REPLICATED_SERVICES = ("RECOMMENDER", "EVENT")

# Settings only the stack reads (stack/programs.py, stack/envoy.py).
STACK_ONLY = tuple(f"{service}_REPLICAS" for service in REPLICATED_SERVICES)

# Replica i (1-based) of a service listens on its port + REPLICA_PORT_STEP * (i - 1): the three
# services' ports are consecutive, so a step of 10 keeps up to 10 replicas of each clear of the
# others' (30051, 30061, ... for the recommender).
REPLICA_PORT_STEP = 10


def replica_ports(cfg: StackConfig, port_key: str, replicas_key: str) -> list[int]:
    """The ports of a service's replicas (RECOMMENDER_REPLICAS, EVENT_REPLICAS; default 1)."""
    n = int(cfg.env.get(replicas_key, "1") or 1)
    if not 1 <= n <= 10:
        raise StackError(f"{replicas_key} must be 1..10, got {n}")
    return [cfg.port(port_key) + REPLICA_PORT_STEP * i for i in range(n)]


def replica_metrics_port(cfg: StackConfig, port_key: str, port: int) -> int:
    """A replica's metrics port: its service's, moved by as much as its gRPC port is."""
    metrics_key = port_key.replace("_PORT", "_METRICS_PORT")
    return cfg.port(metrics_key) + port - cfg.port(port_key)


def listening_ports(cfg: StackConfig) -> dict[str, int]:
    """Every port the local stack listens on, by the setting that puts it there: each *_PORT
    setting, and the further replicas' gRPC and metrics ports."""
    ports = {k: int(v) for k, v in cfg.env.items() if k.endswith("_PORT") and v.isdigit()}
    for service in REPLICATED_SERVICES:
        port_key = f"{service}_PORT"
        for i, port in enumerate(replica_ports(cfg, port_key, f"{service}_REPLICAS")[1:], 2):
            ports[f"{port_key} (replica {i})"] = port
            ports[f"{service}_METRICS_PORT (replica {i})"] = replica_metrics_port(cfg, port_key, port)
    return ports


def _port_ranges(text: str) -> list[range]:
    """ip_local_reserved_ports' format, '8080,30051-30053' (empty: none), as ranges."""
    out = []
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            out.append(range(int(lo), int(hi or lo) + 1))
    return out


def ephemeral_clashes(cfg: StackConfig, proc: Path = Path("/proc/sys/net/ipv4")) -> list[str]:
    """The listening ports inside the kernel's ephemeral range (ip_local_port_range) and not
    reserved (ip_local_reserved_ports). The kernel hands such a port to outgoing connections as
    their source port, so while the stack restarts one can hold it and the program that should
    listen there fails to bind, at random. Empty where the kernel does not say (not Linux)."""
    try:
        lo, hi = (int(x) for x in (proc / "ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return []
    try:
        reserved = _port_ranges((proc / "ip_local_reserved_ports").read_text())
    except OSError:
        reserved = []
    return [
        f"{key}={port} is in this machine's ephemeral port range {lo}-{hi}"
        for key, port in sorted(listening_ports(cfg).items())
        if lo <= port <= hi and not any(port in r for r in reserved)
    ]


def check_ports(cfg: StackConfig) -> None:
    """Refuse ports an outgoing connection may take (ephemeral_clashes), naming each setting."""
    clashes = ephemeral_clashes(cfg)
    if clashes:
        raise StackError(
            "; ".join(clashes)
            + ": choose ports below the range (the .env defaults are), or reserve them with"
            " sysctl net.ipv4.ip_local_reserved_ports"
        )
