"""Settings from the environment, with the defaults of the repository's `.env`.

Environment variables win over `.env`; `${NAME}` in a value refers to another setting, so
moving a port (say POSTGRES_PORT) moves every URL built from it. A required setting that
is missing fails at start with its name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"


class MissingSettingError(RuntimeError):
    """A required setting has no value in the environment or in `.env`."""


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines (optionally `export KEY=...`, values optionally quoted).

    Blank lines and # comments are ignored; anything else fails naming the file and line.
    """
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ")
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise MissingSettingError(f"{path}:{lineno}: expected KEY=value, got {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def merged_env(environ: Mapping[str, str] | None = None, env_file: Path = ENV_FILE) -> dict[str, str]:
    """The `.env` defaults overlaid with the environment, with `${NAME}` references expanded."""
    env = read_env_file(env_file)
    env.update(os.environ if environ is None else environ)
    # A few passes resolve references to values that themselves hold references.
    for _ in range(3):
        env = {k: Template(v).safe_substitute(env) for k, v in env.items()}
    return env


@dataclass(frozen=True)
class Settings:
    """Every setting a recsys process may read; each service uses the ones it needs."""

    database_url: str
    redis_url: str
    kafka_bootstrap_servers: str
    kafka_topic: str
    recommender_port: int
    event_port: int
    profile_port: int
    recommender_addr: str
    event_addr: str
    profile_addr: str
    cache_ttl_seconds: int
    stream_trigger_seconds: float
    stack_dir: Path
    archive_uri: str
    model_dir: str
    log_level: str
    otel_endpoint: str | None
    # Head sampling ratio of traces that start here (calls that arrive without a traceparent).
    trace_sample_ratio: float = 1.0
    # Where the gRPC servers listen: loopback in the local stack (only Envoy is public), all
    # interfaces of a container on compose's internal network.
    grpc_bind_host: str = "127.0.0.1"
    # Tokens: the JWKS they are verified against (a file or an https URL), their issuer and audience.
    auth_jwks: str = ""
    auth_issuer: str = ""
    auth_audience: str = ""
    # The development issuer (recsys.auth.devissuer): the local stack only.
    auth_dev_issuer: bool = False
    auth_dev_signing_key: str = ""
    auth_token_ttl_seconds: int = 3600
    # The token a service sends to other services when the development issuer is off.
    service_token_file: str = ""
    # Prometheus /metrics of each service (recsys.metrics); 0: none.
    recommender_metrics_port: int = 0
    event_metrics_port: int = 0
    profile_metrics_port: int = 0
    streaming_metrics_port: int = 0
    # The nightly training's AlsParams overrides, JSON (batch.als.train --params wins over it):
    # the deployment's validated settings, e.g. Rendle et al.'s user step (README, Model quality).
    als_params: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: Path = ENV_FILE) -> Settings:
        env = merged_env(environ, env_file)

        def req(key: str) -> str:
            value = env.get(key, "")
            if not value:
                raise MissingSettingError(f"required setting {key} is not set (environment or .env)")
            return value

        def integer(key: str) -> int:
            try:
                return int(req(key))
            except ValueError:
                raise MissingSettingError(f"setting {key} must be an integer, got {env[key]!r}") from None

        def optional_int(key: str) -> int:
            return integer(key) if env.get(key) else 0

        def number(key: str) -> float:
            try:
                return float(req(key))
            except ValueError:
                raise MissingSettingError(f"setting {key} must be a number, got {env[key]!r}") from None

        ratio = number("TRACE_SAMPLE_RATIO") if env.get("TRACE_SAMPLE_RATIO") else 1.0
        if not 0.0 <= ratio <= 1.0:
            raise MissingSettingError(f"setting TRACE_SAMPLE_RATIO must be between 0 and 1, got {ratio}")

        dev_issuer = env.get("AUTH_DEV_ISSUER", "false").strip().lower()
        if dev_issuer not in ("true", "false", "1", "0"):
            raise MissingSettingError(f"setting AUTH_DEV_ISSUER must be true or false, got {dev_issuer!r}")

        return cls(
            database_url=req("DATABASE_URL"),
            redis_url=req("REDIS_URL"),
            kafka_bootstrap_servers=req("KAFKA_BOOTSTRAP_SERVERS"),
            kafka_topic=req("KAFKA_TOPIC"),
            recommender_port=integer("RECOMMENDER_PORT"),
            event_port=integer("EVENT_PORT"),
            profile_port=integer("PROFILE_PORT"),
            recommender_addr=req("RECOMMENDER_ADDR"),
            event_addr=req("EVENT_ADDR"),
            profile_addr=req("PROFILE_ADDR"),
            cache_ttl_seconds=integer("CACHE_TTL_SECONDS"),
            stream_trigger_seconds=number("STREAM_TRIGGER_SECONDS"),
            stack_dir=Path(req("STACK_DIR")),
            archive_uri=req("ARCHIVE_URI"),
            model_dir=req("MODEL_DIR"),
            log_level=env.get("LOG_LEVEL", "INFO"),
            otel_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            trace_sample_ratio=ratio,
            grpc_bind_host=env.get("GRPC_BIND_HOST") or "127.0.0.1",
            auth_jwks=req("AUTH_JWKS"),
            auth_issuer=req("AUTH_ISSUER"),
            auth_audience=req("AUTH_AUDIENCE"),
            auth_dev_issuer=dev_issuer in ("true", "1"),
            auth_dev_signing_key=env.get("AUTH_DEV_SIGNING_KEY", ""),
            auth_token_ttl_seconds=(
                integer("AUTH_TOKEN_TTL_SECONDS") if env.get("AUTH_TOKEN_TTL_SECONDS") else 3600
            ),
            service_token_file=env.get("SERVICE_TOKEN_FILE", ""),
            recommender_metrics_port=optional_int("RECOMMENDER_METRICS_PORT"),
            event_metrics_port=optional_int("EVENT_METRICS_PORT"),
            profile_metrics_port=optional_int("PROFILE_METRICS_PORT"),
            streaming_metrics_port=optional_int("STREAMING_METRICS_PORT"),
            als_params=env.get("ALS_PARAMS", ""),
        )
