"""`make up` refuses listening ports the kernel may hand to outgoing connections.

A CI run once lost the event service on a restart: 50052 lay in Linux's ephemeral range, some
outgoing connection held it as its source port, and the service could not bind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stack.config import StackConfig, StackError, check_ports, ephemeral_clashes, listening_ports


def _cfg(**env: str) -> StackConfig:
    return StackConfig.load({**os.environ, **env})


def _kernel(tmp_path: Path, port_range: str = "32768\t60999\n", reserved: str = "\n") -> Path:
    (tmp_path / "ip_local_port_range").write_text(port_range)
    (tmp_path / "ip_local_reserved_ports").write_text(reserved)
    return tmp_path


def test_the_defaults_are_below_the_linux_ephemeral_range(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_PORT")}
    cfg = StackConfig.load(env)
    assert ephemeral_clashes(cfg, _kernel(tmp_path)) == []
    assert cfg.port("EVENT_PORT") < 32768


def test_a_port_in_the_range_is_named_with_its_setting(tmp_path: Path) -> None:
    clashes = ephemeral_clashes(_cfg(EVENT_PORT="50052"), _kernel(tmp_path))
    assert clashes == ["EVENT_PORT=50052 is in this machine's ephemeral port range 32768-60999"]


def test_replica_ports_are_checked_too(tmp_path: Path) -> None:
    cfg = _cfg(RECOMMENDER_PORT="32750", RECOMMENDER_REPLICAS="3")
    ports = listening_ports(cfg)
    assert ports["RECOMMENDER_PORT (replica 3)"] == 32770
    assert ports["RECOMMENDER_METRICS_PORT (replica 3)"] == cfg.port("RECOMMENDER_METRICS_PORT") + 20
    assert ephemeral_clashes(cfg, _kernel(tmp_path)) == [
        "RECOMMENDER_PORT (replica 3)=32770 is in this machine's ephemeral port range 32768-60999"
    ]


def test_reserved_ports_are_allowed(tmp_path: Path) -> None:
    cfg = _cfg(EVENT_PORT="50052", PROFILE_PORT="50053")
    kernel = _kernel(tmp_path, reserved="8080,50052-50053\n")
    assert ephemeral_clashes(cfg, kernel) == []
    kernel = _kernel(tmp_path, reserved="50053\n")
    assert [c.split("=")[0] for c in ephemeral_clashes(cfg, kernel)] == ["EVENT_PORT"]


def test_a_kernel_that_does_not_say_is_not_checked(tmp_path: Path) -> None:
    assert ephemeral_clashes(_cfg(EVENT_PORT="50052"), tmp_path / "absent") == []


def test_check_ports_names_the_setting_and_the_remedy() -> None:
    if not Path("/proc/sys/net/ipv4/ip_local_port_range").exists():
        pytest.fail("this suite runs on Linux; the kernel's ephemeral range is unreadable")
    lo, _hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    reserved = Path("/proc/sys/net/ipv4/ip_local_reserved_ports").read_text()
    port = next(p for p in range(lo, lo + 1000) if str(p) not in reserved)
    with pytest.raises(StackError, match=f"PROFILE_PORT={port} .*ip_local_reserved_ports"):
        check_ports(_cfg(PROFILE_PORT=str(port)))


def test_the_lifecycle_bench_stack_is_clear_of_the_range_and_of_the_default_stack(tmp_path: Path) -> None:
    from bench.lifecycle import STACK_ENV

    defaults = StackConfig.load({k: v for k, v in os.environ.items() if not k.endswith("_PORT")})
    own = StackConfig.load({**{k: v for k, v in os.environ.items() if not k.endswith("_PORT")}, **STACK_ENV})
    assert ephemeral_clashes(own, _kernel(tmp_path)) == []
    shared = set(listening_ports(own).values()) & set(listening_ports(defaults).values())
    assert not shared, f"the bench's stack would collide with a running default stack on {shared}"
