"""Faults in the speed layer: every accepted (200) event lands in rt_user_interactions exactly once.

- the streaming job is killed with SIGKILL (Python driver and JVM) mid-stream; supervisord
  restarts it and it resumes from its checkpoint;
- the Kafka broker is restarted while events flow; the Event service answers 503 (bounded)
  while it is down, and what it accepted is never lost.

These restart parts of the stack, so they run last (marker `stack_restart`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from stack import supervisor
from stack.client import (
    post_event,
    remove_seeded,
    seed_genre_clusters,
    wait_for,
)

pytestmark = [pytest.mark.stack, pytest.mark.stack_restart, pytest.mark.slow]


@dataclass
class Flow:
    """Posts events from background threads until stopped; remembers what was accepted."""

    envoy_url: str
    movies: list[int]
    users: list[int]
    accepted: list[str] = field(default_factory=list)
    rejected: dict[int, int] = field(default_factory=dict)
    slowest_failure_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, worker: int) -> None:
        run = uuid.uuid4().hex[:8]
        i = 0
        while not self._stop.is_set():
            i += 1
            event_id = f"fault-{run}-{worker}-{i}"
            user = self.users[i % len(self.users)]
            movie = self.movies[(i * 7 + worker) % len(self.movies)]
            started = time.monotonic()
            try:
                status, _ = post_event(
                    self.envoy_url, eventId=event_id, userId=user, movieId=movie, type="EVENT_TYPE_CLICK"
                )
            except OSError:
                status = -1
            with self._lock:
                if status == 200:
                    self.accepted.append(event_id)
                else:
                    self.rejected[status] = self.rejected.get(status, 0) + 1
                    self.slowest_failure_s = max(self.slowest_failure_s, time.monotonic() - started)
                    time.sleep(0.2)

    def __enter__(self) -> Flow:
        self._threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(2)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


@pytest.fixture(scope="module")
def movies(db: psycopg.Connection[Any]) -> Iterator[list[int]]:
    yield [m for ids in seed_genre_clusters(db).values() for m in ids]
    remove_seeded(db)


def _streaming_pid(stack: Any) -> int:
    info = supervisor.info(stack.cfg, "streaming")
    assert info and info["statename"] == "RUNNING", info
    return int(info["pid"])


def _landed(db: psycopg.Connection[Any], ids: list[str]) -> int:
    row = db.execute("SELECT count(*) FROM rt_user_interactions WHERE event_id = ANY(%s)", (ids,)).fetchone()
    return int(row[0])


def _assert_exactly_once(db: psycopg.Connection[Any], flow: Flow, timeout: float) -> None:
    ids = list(flow.accepted)
    assert len(ids) > 50, f"too few accepted events to mean anything: {len(ids)} ({flow.rejected})"
    assert len(set(ids)) == len(ids)
    got = wait_for(lambda: _landed(db, ids) == len(ids), timeout, interval=1.0)
    assert got, f"{len(ids) - _landed(db, ids)} of {len(ids)} accepted events missing"
    # Profiles are recomputed from the users' histories, so replays after the crash cannot
    # double count.
    time.sleep(1)
    rows = db.execute(
        "SELECT p.user_id, p.interaction_count, (SELECT count(*) FROM rt_user_interactions i "
        "WHERE i.user_id = p.user_id) FROM user_profiles p WHERE p.user_id = ANY(%s)",
        (flow.users,),
    ).fetchall()
    assert rows and all(r[1] == r[2] for r in rows), rows
    # The users' histories are incremented, not recomputed: only by the rows an insert
    # returned, so a replayed batch adds nothing (every event here is a click, signal 1).
    history = db.execute(
        "SELECT i.user_id, count(*), (SELECT sum(s.events) FROM user_items s WHERE s.user_id = i.user_id), "
        "(SELECT sum(s.signal) FROM user_items s WHERE s.user_id = i.user_id) "
        "FROM rt_user_interactions i WHERE i.user_id = ANY(%s) GROUP BY i.user_id",
        (flow.users,),
    ).fetchall()
    assert history and all(r[1] == r[2] == r[3] for r in history), history


def _users() -> list[int]:
    base = 6_000_000_000 + uuid.uuid4().int % 1_000_000_000
    return [base + i for i in range(20)]


def test_kill_9_streaming_job_mid_stream(stack: Any, db: psycopg.Connection[Any], movies: list[int]) -> None:
    flow = Flow(stack.envoy_url, movies, _users())
    with flow:
        time.sleep(4)
        pid = _streaming_pid(stack)
        os.killpg(os.getpgid(pid), signal.SIGKILL)  # the driver and its JVM, no clean-up
        time.sleep(1)
        # supervisord restarts it (an unexpected exit); keep the events flowing meanwhile
        assert wait_for(lambda: _restarted(stack, pid), 60, interval=1.0), "streaming job not restarted"
        time.sleep(4)
    _assert_exactly_once(db, flow, timeout=180)


def _restarted(stack: Any, old_pid: int) -> bool:
    info = supervisor.info(stack.cfg, "streaming")
    return bool(info and info["statename"] == "RUNNING" and info["pid"] != old_pid)


def test_kafka_broker_restart_while_events_flow(
    stack: Any, db: psycopg.Connection[Any], movies: list[int]
) -> None:
    rpc = supervisor.rpc(stack.cfg)
    flow = Flow(stack.envoy_url, movies, _users())
    with flow:
        time.sleep(3)
        rpc.supervisor.stopProcess("kafka", True)
        time.sleep(3)
        rpc.supervisor.startProcess("kafka", True)
        ok = wait_for(_kafka_accepts(stack), 120, interval=1.0)
        assert ok, "Kafka did not come back"
        time.sleep(5)
    # 503 while the broker is down; 429 is Envoy's per-client limit, also "not accepted".
    assert flow.rejected.get(503), f"expected 503s while the broker was down: {flow.rejected}"
    assert set(flow.rejected) <= {503, 429}, flow.rejected
    assert flow.slowest_failure_s < 10, f"a failure took {flow.slowest_failure_s:.1f}s to answer"
    _assert_exactly_once(db, flow, timeout=180)


def _kafka_accepts(stack: Any) -> Callable[[], bool]:
    from stack import checks

    def probe() -> bool:
        try:
            checks.kafka(stack.cfg)
            return True
        except Exception:
            return False

    return probe
