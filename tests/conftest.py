"""Session fixtures: the real local stack for integration tests.

    @pytest.mark.stack            # module: pytestmark = pytest.mark.stack
    def test_x(stack):            # `stack` is a StackInfo (below); asking for it is optional:
        ...                       # every test marked `stack` gets the stack up first.

The `stack` fixture runs the same code as `make up` (stack.core.up: idempotent, so an already
healthy stack is reused after a quick check and any new migration is applied). When the stack
cannot start, every test that needs it fails with the component and the log file to read;
none is skipped. The stack stays up after the session (STACK_DOWN_AFTER_TESTS=1 stops it).
Tests marked `stack_restart` (they stop and start the stack) run last.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# stack/ is a top-level package of the repository, not of the installed distribution
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stack import core
from stack.config import StackConfig, StackError


@dataclass(frozen=True)
class StackInfo:
    cfg: StackConfig
    env: dict[str, str]  # every setting (.env + environment, ${} expanded)
    database_url: str
    redis_url: str
    kafka_bootstrap_servers: str
    kafka_topic: str
    envoy_url: str  # http://127.0.0.1:8080  REST (transcoded) and gRPC
    envoy_grpc_addr: str  # 127.0.0.1:8080      for grpc.insecure_channel / grpcurl
    envoy_admin_url: str  # http://127.0.0.1:9901
    recommender_addr: str  # 127.0.0.1:30051     the services directly
    event_addr: str
    profile_addr: str
    ports: dict[str, int] = field(default_factory=dict)  # postgres, redis, kafka, envoy, ...
    logs: Path = Path(".stack/logs")
    grpcurl: Path = Path(".stack/bin/grpcurl")
    ghz: Path = Path(".stack/bin/ghz")

    @classmethod
    def from_config(cls, cfg: StackConfig) -> StackInfo:
        e = cfg.env
        return cls(
            cfg=cfg,
            env=dict(e),
            database_url=e["DATABASE_URL"],
            redis_url=e["REDIS_URL"],
            kafka_bootstrap_servers=e["KAFKA_BOOTSTRAP_SERVERS"],
            kafka_topic=e.get("KAFKA_TOPIC", "movie-events"),
            envoy_url=cfg.envoy_url,
            envoy_grpc_addr=f"127.0.0.1:{cfg.port('ENVOY_PORT')}",
            envoy_admin_url=cfg.envoy_admin_url,
            recommender_addr=e["RECOMMENDER_ADDR"],
            event_addr=e["EVENT_ADDR"],
            profile_addr=e["PROFILE_ADDR"],
            ports=core.ports(cfg),
            logs=cfg.logs,
            grpcurl=cfg.bin / "grpcurl",
            ghz=cfg.bin / "ghz",
        )

    def up(self) -> None:
        core.up(self.cfg)

    def down(self) -> None:
        core.down(self.cfg)

    def status(self) -> list[core.Check]:
        return core.status(self.cfg)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stack_restart: stops and restarts the stack; runs last")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("stack_restart") is not None)


_failure: list[str] = []


@pytest.fixture(scope="session")
def stack() -> StackInfo:
    if _failure:  # do not retry a failed start for every test
        pytest.fail(_failure[0], pytrace=False)
    cfg = StackConfig.load()
    try:
        core.up(cfg)
    except StackError as e:
        _failure.append(f"the local stack did not come up: {e}")
        pytest.fail(_failure[0], pytrace=False)
    info = StackInfo.from_config(cfg)
    yield info
    if os.environ.get("STACK_DOWN_AFTER_TESTS") == "1":
        core.down(cfg)


@pytest.fixture(autouse=True)
def _stack_for_marked_tests(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("stack") is not None:
        request.getfixturevalue("stack")
