"""Health probes, one per component. Each returns a short detail string when healthy and
raises NotReady(reason) when not. Heavy client libraries are imported lazily (.venv only)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from .config import StackConfig


class NotReady(Exception):
    pass


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tcp(port: int) -> None:
    if not port_open(port):
        raise NotReady(f"nothing listening on 127.0.0.1:{port}")


def admin_dsn(cfg: StackConfig, dbname: str = "postgres") -> str:
    """The superuser DSN (initdb -U postgres, trust auth on 127.0.0.1)."""
    u = urlsplit(cfg.database_url)
    netloc = f"postgres@{u.hostname or '127.0.0.1'}:{cfg.postgres_port}"
    return urlunsplit(("postgresql", netloc, "/" + dbname, "", ""))


def postgres(cfg: StackConfig) -> str:
    import psycopg

    _tcp(cfg.postgres_port)
    try:
        with psycopg.connect(admin_dsn(cfg), connect_timeout=3) as conn:
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.OperationalError as e:
        raise NotReady(str(e).strip().splitlines()[0]) from e
    return f"PostgreSQL {version[0] if version else '?'} on :{cfg.postgres_port}"


def postgres_app(cfg: StackConfig) -> str:
    """The application's own connection (DATABASE_URL) and pgvector."""
    import psycopg

    try:
        with psycopg.connect(cfg.database_url, connect_timeout=3) as conn:
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()
    except psycopg.OperationalError as e:
        raise NotReady(str(e).strip().splitlines()[0]) from e
    if not row:
        raise NotReady("extension vector is not installed in the recsys database")
    return f"DATABASE_URL ok, pgvector {row[0]}"


def redis(cfg: StackConfig) -> str:
    import redis as redis_lib

    _tcp(cfg.port("REDIS_PORT"))
    try:
        client = redis_lib.Redis.from_url(cfg.env["REDIS_URL"], socket_timeout=2)
        if not client.ping():
            raise NotReady("PING did not answer PONG")
        info = client.info("server")
    except redis_lib.RedisError as e:
        raise NotReady(str(e)) from e
    return f"redis {info.get('redis_version')} PONG on :{cfg.port('REDIS_PORT')}"


def kafka(cfg: StackConfig) -> str:
    from confluent_kafka.admin import AdminClient

    _tcp(cfg.port("KAFKA_PORT"))
    admin = AdminClient({"bootstrap.servers": cfg.env["KAFKA_BOOTSTRAP_SERVERS"], "socket.timeout.ms": 3000})
    try:
        md = admin.list_topics(timeout=3)
    except Exception as e:  # KafkaException
        raise NotReady(f"broker metadata: {e}") from e
    if not md.brokers:
        raise NotReady("no brokers in metadata")
    return f"{len(md.brokers)} broker(s), {len(md.topics)} topic(s)"


def kafka_topic(cfg: StackConfig) -> str:
    from confluent_kafka.admin import AdminClient

    topic = cfg.env.get("KAFKA_TOPIC", "movie-events")
    _tcp(cfg.port("KAFKA_PORT"))
    admin = AdminClient({"bootstrap.servers": cfg.env["KAFKA_BOOTSTRAP_SERVERS"]})
    try:
        md = admin.list_topics(timeout=5)
    except Exception as e:
        raise NotReady(f"broker metadata: {e}") from e
    if topic not in md.topics or md.topics[topic].error is not None:
        raise NotReady(f"topic {topic} does not exist")
    return f"topic {topic}: {len(md.topics[topic].partitions)} partitions"


def grpc_health(addr: str, service: str) -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", service):
            label = name or '""'
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
            except grpc.RpcError as e:
                raise NotReady(f"health {label}: {e.code().name} {e.details() or ''}".strip()) from e
            if resp.status != health_pb2.HealthCheckResponse.SERVING:
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
                raise NotReady(f"health {label}: {status}")
    return f"{service} SERVING on {addr}"


def http_get(url: str, timeout: float = 2) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        raise NotReady(f"GET {url}: {e}") from e


def envoy(cfg: StackConfig) -> str:
    status, body = http_get(f"{cfg.envoy_admin_url}/ready")
    if status != 200 or body.strip() != "LIVE":
        raise NotReady(f"GET /ready -> {status} {body.strip()!r}")
    _tcp(cfg.port("ENVOY_PORT"))
    return f"LIVE (admin :{cfg.port('ENVOY_ADMIN_PORT')}, listener :{cfg.port('ENVOY_PORT')})"


def jaeger(cfg: StackConfig) -> str:
    status, body = http_get(f"http://127.0.0.1:{cfg.port('JAEGER_ADMIN_PORT')}/")
    if status != 200 or json.loads(body or "{}").get("status") != "Server available":
        raise NotReady(f"admin / -> {status} {body.strip()[:80]!r}")
    _tcp(cfg.port("JAEGER_OTLP_PORT"))
    _tcp(cfg.port("JAEGER_QUERY_PORT"))
    return f"available (OTLP :{cfg.port('JAEGER_OTLP_PORT')}, query API :{cfg.port('JAEGER_QUERY_PORT')})"


def reflection_services(addr: str, timeout: float = 5) -> list[str]:
    """Service names listed by gRPC server reflection at addr (e.g. through Envoy)."""
    import grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(addr) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = stub.ServerReflectionInfo(iter([req]), timeout=timeout)
        names: list[str] = []
        for resp in responses:
            names += [s.name for s in resp.list_services_response.service]
        return sorted(names)
