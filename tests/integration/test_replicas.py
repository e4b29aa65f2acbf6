"""Two recommenders and two event services behind Envoy: both serve, and losing one loses nothing.

The stack is brought up again with RECOMMENDER_REPLICAS=2 and EVENT_REPLICAS=2 (the same
`core.up` as `make up`: only Envoy and the new replicas start). Under steady load through the
gateway (recommendation GETs and event POSTs, each event with its own id and retried with it on
a 503, as the API asks of clients), one replica of each is killed with SIGKILL:
- every GET is answered 200 (Envoy retries a read on a reset or a refused connection, and
  health checks and outlier detection take the dead replica out);
- every event ends up acknowledged and stored exactly once;
- before the kill, both replicas of each served requests (Envoy's per-host counters).
The stack goes back to one replica of each at the end.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from stack import core, supervisor
from stack.config import StackConfig
from tests.tokens import auth_headers, service_token

pytestmark = [pytest.mark.stack, pytest.mark.stack_restart, pytest.mark.slow]

REPLICAS = {"RECOMMENDER_REPLICAS": "2", "EVENT_REPLICAS": "2"}


@pytest.fixture(scope="module")
def replicated(stack: Any) -> Iterator[StackConfig]:
    cfg = StackConfig.load({**os.environ, **REPLICAS})
    core.up(cfg)
    try:
        yield cfg
    finally:
        core.up(stack.cfg)


def _call(url: str, tok: str, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"content-type": "application/json", **auth_headers(tok)},
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()[:300]


def _host_requests(admin_url: str, cluster: str) -> dict[str, int]:
    """Envoy's count of completed requests per endpoint of a cluster (admin /clusters)."""
    with urllib.request.urlopen(f"{admin_url}/clusters", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split("::")
        if len(parts) == 4 and parts[0] == cluster and parts[2] == "rq_total":
            out[parts[1]] = int(parts[3])
    return out


def test_losing_a_replica_of_each_loses_no_request(stack: Any, replicated: StackConfig) -> None:
    envoy, admin = replicated.envoy_url, replicated.envoy_admin_url
    with psycopg.connect(stack.database_url) as conn:
        users = [u for (u,) in conn.execute("SELECT user_id FROM user_profiles ORDER BY user_id LIMIT 50")]
        movie = conn.execute("SELECT movie_id FROM movies ORDER BY movie_id LIMIT 1").fetchone()[0]
    assert users
    stop = threading.Event()
    gets: Counter[int] = Counter()
    posted: dict[str, int] = {}  # event id -> attempts until acknowledged
    failures: list[str] = []
    run = uuid.uuid4().hex[:8]
    author = 9_000_000_000 + uuid.uuid4().int % 1_000_000_000

    # A token per thread, and each thread paced under the gateway's per-caller rate limit (100/s):
    # an unpaced writer on a fast machine goes over it.
    def reader(tok: str) -> None:
        i = 0
        while not stop.is_set():
            time.sleep(0.015)
            status, body = _call(f"{envoy}/v1/users/{users[i % len(users)]}/recommendations?limit=5", tok)
            gets[status] += 1
            if status != 200:
                failures.append(f"GET {status} {body!r}")
            i += 1

    def writer(tok: str) -> None:
        i = 0
        while not stop.is_set():
            time.sleep(0.015)
            event_id = f"replicas-{run}-{i}"
            body = {
                "eventId": event_id,
                "userId": str(author),
                "movieId": str(movie),
                "type": "EVENT_TYPE_VIEW",
            }
            for attempt in range(1, 11):
                status, answer = _call(f"{envoy}/v1/events", tok, body)
                if status == 200:
                    posted[event_id] = attempt
                    break
                if status != 503:
                    failures.append(f"POST {status} {answer!r}")
                    break
                time.sleep(0.2)
            else:
                failures.append(f"POST {event_id}: 10 attempts, never acknowledged")
            i += 1

    threads = [threading.Thread(target=reader, args=(service_token(f"replicas-read-{i}"),)) for i in range(2)]
    threads.append(threading.Thread(target=writer, args=(service_token("replicas-write"),)))
    for t in threads:
        t.start()
    try:
        time.sleep(8)
        before = {c: _host_requests(admin, c) for c in ("recommender", "event")}
        victims = {}
        for name in ("recommender-2", "event-2"):
            info = supervisor.info(replicated, name)
            assert info is not None and info["statename"] == "RUNNING", name
            victims[name] = int(info["pid"])
            os.kill(victims[name], signal.SIGKILL)
        time.sleep(12)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)

    for cluster, hosts in before.items():
        assert len(hosts) == 2, f"{cluster}: {hosts}"
        assert all(n > 0 for n in hosts.values()), (
            f"a {cluster} replica served nothing before the kill: {hosts}"
        )
    assert not failures, failures[:5]
    assert gets[200] > 100, gets
    assert len(posted) > 20, posted

    ids = list(posted)
    deadline = time.monotonic() + 60
    stored: list[tuple[str, int]] = []
    while time.monotonic() < deadline:
        with psycopg.connect(stack.database_url) as conn:
            stored = conn.execute(
                "SELECT event_id, count(*) FROM rt_user_interactions "
                "WHERE event_id = ANY(%s) GROUP BY event_id",
                (ids,),
            ).fetchall()
        if len(stored) == len(ids):
            break
        time.sleep(1)
    assert len(stored) == len(ids), f"{len(ids) - len(stored)} acknowledged events not stored"
    assert all(n == 1 for _, n in stored)
