"""The local stack: every component healthy after `make up`, and a clean stop/start."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request

import grpc
import psycopg
import pytest
import redis
from confluent_kafka.admin import AdminClient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from stack import checks, core, supervisor

pytestmark = pytest.mark.stack

SERVICES = ["recsys.v1.RecommenderService", "recsys.v1.EventService", "recsys.v1.ProfileService"]


def test_postgres_has_pgvector(stack):
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()
    assert row is not None and row[0]


def test_redis_ping(stack):
    assert redis.Redis.from_url(stack.redis_url).ping() is True


def test_kafka_lists_movie_events(stack):
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap_servers})
    topics = admin.list_topics(timeout=10).topics
    assert stack.kafka_topic == "movie-events"
    assert "movie-events" in topics
    assert len(topics["movie-events"].partitions) == 3


def test_envoy_ready_is_live(stack):
    curl = shutil.which("curl")
    if curl:
        out = subprocess.run([curl, "-s", f"{stack.envoy_admin_url}/ready"], capture_output=True, text=True)
        body = out.stdout
    else:
        body = urllib.request.urlopen(f"{stack.envoy_admin_url}/ready", timeout=5).read().decode()
    assert body.strip() == "LIVE"


@pytest.mark.parametrize(
    ("addr_attr", "service"),
    [("recommender_addr", SERVICES[0]), ("event_addr", SERVICES[1]), ("profile_addr", SERVICES[2])],
)
def test_service_health_serving(stack, addr_attr, service):
    with grpc.insecure_channel(getattr(stack, addr_attr)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", service):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING, name


def test_grpcurl_lists_services_through_envoy(stack):
    assert stack.grpcurl.exists(), f"{stack.grpcurl} missing: run `make install`"
    out = subprocess.run(
        [str(stack.grpcurl), "-plaintext", stack.envoy_grpc_addr, "list"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split())
    assert set(SERVICES) <= listed, out.stdout


def test_reflection_through_envoy_python_client(stack):
    assert set(SERVICES) <= set(checks.reflection_services(stack.envoy_grpc_addr))


def test_grpc_health_through_envoy(stack):
    # native gRPC on the REST port: routed by the /recsys.v1.X/ prefix
    with grpc.insecure_channel(stack.envoy_grpc_addr) as channel:
        from recsys.v1 import recommender_service_pb2, recommender_service_pb2_grpc

        stub = recommender_service_pb2_grpc.RecommenderServiceStub(channel)
        resp = stub.ListMovies(recommender_service_pb2.ListMoviesRequest(page_size=2), timeout=10)
        assert len(resp.movies) > 0


def _get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_rest_is_transcoded_by_envoy(stack):
    status, headers, body = _get(f"{stack.envoy_url}/v1/movies?page_size=2")
    assert status == 200, body
    assert headers.get("content-type", "").startswith("application/json")
    assert json.loads(body).get("movies"), body


def test_envoy_direct_and_catch_all(stack):
    assert _get(f"{stack.envoy_url}/openapi.yaml")[:1] == (200,)
    status, _, body = _get(f"{stack.envoy_url}/v1/no/such/path")
    assert status == 404 and json.loads(body)["code"] == 5
    # Everything that is not the API is the web client, on the same origin as the API.
    status, headers, body = _get(f"{stack.envoy_url}/")
    assert status == 200 and "<div id=\"root\">" in body, body[:500]
    assert "default-src 'self'" in headers.get("content-security-policy", "")


def test_status_reports_every_component_healthy(stack):
    # as `make up` leaves it: earlier tests may have stopped a program on purpose (fault tests)
    stack.up()
    bad = [c for c in core.status(stack.cfg) if not c.ok]
    assert not bad, bad


@pytest.mark.stack_restart
def test_down_stops_everything_then_up_again(stack):
    stack.down()
    assert not supervisor.running(stack.cfg)
    still_open = {name: port for name, port in stack.ports.items() if checks.port_open(port)}
    assert not still_open, f"ports still open after down: {still_open}"

    stack.up()  # and leave it up for whatever runs next
    bad = [c for c in core.status(stack.cfg) if not c.ok]
    assert not bad, bad
    with psycopg.connect(stack.database_url) as conn:
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname='vector'").fetchone()
