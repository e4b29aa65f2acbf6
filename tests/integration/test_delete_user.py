"""Issue #18, DeleteUser: once a user is erased, nothing of theirs is left anywhere we can look.

One user's whole life on the real stack: events through the gateway (recent ones, and a
backfill five days old that the archive job moves to Parquet), stored by the stream; a served
list (a log row), feedback on it, a cached list; the nightly publish's rows of a trained user.
Then DELETE /v1/users/{id} with the user's own token, and the search: every table with a
user_id column (read from the schema, so a new table cannot be missed), every Redis key that
names the id, the Parquet archive and the kept model artifacts once the archive job has run, and
the training extract even before it has. Afterwards the id is an unknown user (popular tier); an
event that occurred before the deletion and arrives after it (a replay, a backlog in Kafka) is
dropped by the stream, and an event after the deletion starts a new user (docs/privacy.md).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pandas as pd
import psycopg
import pytest
import redis

from batch.archive.erasure import ErasureResult, erase_archive, erase_artifacts
from batch.archive.job import archive
from recsys.cache import recommendations_key
from recsys.pending import pending_key
from recsys.tables.deleted_users import USER_TABLES, tombstones
from recsys.v1 import profile_service_pb2, profile_service_pb2_grpc
from stack.client import wait_for
from tests.integration.batchdata import REPO
from tests.tokens import admin_token, bearer, service_token, user_token

pytestmark = pytest.mark.stack


def _new_user_id() -> int:
    """A fresh id that training can hold (Spark ALS ids are 32-bit: batch.als.data.MAX_ID)."""
    return 1_500_000_000 + uuid.uuid4().int % 500_000_000


def _call(stack: Any, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        stack.envoy_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _ok(answer: tuple[int, Any]) -> Any:
    status, body = answer
    assert status == 200, body
    return body


def _event(
    movie: int, kind: str, *, event_id: str, at: datetime | None = None, **extra: Any
) -> dict[str, Any]:
    event = {"eventId": event_id, "movieId": str(movie), "type": f"EVENT_TYPE_{kind}", **extra}
    if at is not None:
        event["occurredAt"] = at.isoformat().replace("+00:00", "Z")
    return event


def _stored(db: psycopg.Connection[Any], event_ids: list[str]) -> set[str]:
    rows = db.execute(
        "SELECT event_id FROM rt_user_interactions WHERE event_id = ANY(%s)", (event_ids,)
    ).fetchall()
    return {r[0] for r in rows}


def _archive_dir(stack: Any) -> Path:
    uri = Path(stack.env["ARCHIVE_URI"])
    return uri if uri.is_absolute() else REPO / uri


def _archived_rows(stack: Any, user: int) -> int:
    root = _archive_dir(stack)
    if not any(root.glob("date=*/*.parquet")):
        return 0
    return len(pd.read_parquet(root, columns=["user_id"], filters=[("user_id", "==", user)]))


def _run_archive_job(spark: Any, stack: Any, db: psycopg.Connection[Any]) -> ErasureResult:
    """What `python -m batch.archive` runs each night (in this test's Spark session: one JVM)."""
    archive(spark, stack.database_url, str(_archive_dir(stack)))
    erased = erase_archive(spark, stack.database_url, str(_archive_dir(stack)), datetime.now(UTC))
    erase_artifacts(_model_dir(stack), tombstones(db))
    return erased


def _model_dir(stack: Any) -> Path:
    path = Path(stack.env["MODEL_DIR"])
    return path if path.is_absolute() else REPO / path


def _artifact_rows(stack: Any, user: int) -> int:
    """The user's rows in the kept model versions' training pairs and user factors."""
    found = 0
    for version in _model_dir(stack).iterdir():
        for name, column in (
            ("pairs.parquet", "user_id"),
            ("als/userFactors", "id"),
        ):
            if (version / name).exists():
                found += int((pd.read_parquet(version / name, columns=[column])[column] == user).sum())
    return found


def _tables_with_user_id(db: psycopg.Connection[Any]) -> set[str]:
    rows = db.execute(
        """
        SELECT c.table_name FROM information_schema.columns c
          JOIN information_schema.tables t USING (table_schema, table_name)
         WHERE c.table_schema = 'public' AND c.column_name = 'user_id' AND t.table_type = 'BASE TABLE'
        """
    ).fetchall()
    return {r[0] for r in rows}


def _rows_of(db: psycopg.Connection[Any], user: int) -> dict[str, int]:
    return {
        table: db.execute(f"SELECT count(*) FROM {table} WHERE user_id = %s", (user,)).fetchone()[0]
        for table in USER_TABLES
    }


def _keys_of(r: redis.Redis, user: int) -> list[bytes]:
    return list(r.scan_iter(match=f"*{user}*", count=1000))


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from batch.common.spark import build_session

    session = build_session(
        "test-delete-user", master="local[1]", extra_conf={"spark.sql.shuffle.partitions": "2"}
    )
    yield session
    session.stop()


def _extracted(spark: Any, stack: Any, user: int) -> int:
    """The user's rows in what training reads (batch.als.data.extract_events)."""
    from pyspark.sql import functions as F

    from batch.als.data import extract_events

    extract = extract_events(spark, stack.database_url, str(_archive_dir(stack)))
    assert extract is not None
    return int(extract.events.where(F.col("user_id") == user).count())


@pytest.fixture(scope="module")
def db(stack: Any) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        yield conn


def test_delete_user_leaves_nothing_and_the_id_is_unknown(
    stack: Any, db: psycopg.Connection[Any], spark: Any
) -> None:
    assert _tables_with_user_id(db) - {"deleted_users"} == set(USER_TABLES), (
        "a table holds user ids that DeleteUser does not erase (recsys.tables.deleted_users.USER_TABLES)"
    )
    user, other = _new_user_id(), _new_user_id()
    token = user_token(user)
    r = redis.Redis.from_url(stack.redis_url)
    movies = [
        m
        for (m,) in db.execute(
            "SELECT movie_id FROM movies WHERE embedding IS NOT NULL ORDER BY popularity DESC LIMIT 8"
        )
    ]
    assert len(movies) == 8, "no live model with embedded movies"
    tag = uuid.uuid4().hex[:8]

    # History: a backfill five days old (a service may post events of any age), and today's likes.
    old_ids = [f"del-{tag}-old-{i}" for i in range(3)]
    five_days_ago = datetime.now(UTC) - timedelta(days=5)
    backfill = [
        _event(m, "WATCH", event_id=e, at=five_days_ago) for m, e in zip(movies[:3], old_ids, strict=True)
    ]
    answer = _ok(
        _call(stack, "POST", "/v1/events:batch", service_token(), {"userId": str(user), "events": backfill})
    )
    assert answer["accepted"] == 3, answer
    new_ids = [f"del-{tag}-like-{i}" for i in range(5)]
    likes = [_event(m, "LIKE", event_id=e) for m, e in zip(movies[3:], new_ids, strict=True)]
    _ok(_call(stack, "POST", "/v1/events:batch", token, {"userId": str(user), "events": likes}))
    assert wait_for(lambda: _stored(db, old_ids + new_ids) == set(old_ids + new_ids), 60), (
        "stream stored nothing"
    )

    # A served list (logged), feedback on it, and a cached list.
    served = _ok(_call(stack, "GET", f"/v1/users/{user}/recommendations?limit=10", token))
    assert served["tier"] == "TIER_REALTIME", served["tier"]
    request_id, first = served["requestId"], int(served["items"][0]["movie"]["movieId"])
    click_id = f"del-{tag}-click"
    _ok(
        _call(
            stack,
            "POST",
            "/v1/events",
            token,
            {"userId": str(user), **_event(first, "CLICK", event_id=click_id, requestId=request_id)},
        )
    )
    assert wait_for(
        lambda: db.execute(
            "SELECT count(*) FROM recommendation_feedback WHERE event_id = %s", (click_id,)
        ).fetchone()[0],
        60,
    ), "feedback never stored"
    assert wait_for(lambda: r.llen(pending_key(user)) == 0, 30)
    _ok(_call(stack, "GET", f"/v1/users/{user}/recommendations?limit=10", token))
    assert wait_for(lambda: r.exists(recommendations_key(user)), 10), "the list was never cached"
    # What the nightly publish writes for a user it trained (the stack's model predates this
    # user, so the rows are written as batch.als.publish.stage would).
    live = db.execute("SELECT version FROM models WHERE status = 'live'").fetchone()[0]
    db.execute(
        "INSERT INTO model_user_factors (model_version, user_id, preference_vector) "
        "SELECT %s, %s, preference_vector FROM user_profiles WHERE user_id = %s",
        (live, user, user),
    )
    db.execute(
        "INSERT INTO batch_recommendations (model_version, user_id, rank, movie_id, score) "
        "SELECT %s, %s, n, m, 1.0 FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(m, n)",
        (live, user, movies[:3]),
    )

    # The nightly archive moves the old events to Parquet.
    _run_archive_job(spark, stack, db)
    before = _rows_of(db, user)
    assert all(before.values()), before
    assert _archived_rows(stack, user) == 3
    assert _extracted(spark, stack, user) == 9  # 3 archived + 5 likes + the click

    # Another user may not delete them; the user may (REST, through Envoy).
    status, body = _call(stack, "DELETE", f"/v1/users/{user}", user_token(other))
    assert status == 403, body
    with grpc.insecure_channel(stack.envoy_grpc_addr) as channel:
        with pytest.raises(grpc.RpcError) as err:
            profile_service_pb2_grpc.ProfileServiceStub(channel).DeleteUser(
                profile_service_pb2.DeleteUserRequest(user_id=user),
                metadata=bearer(user_token(other)),
                timeout=10,
            )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert _rows_of(db, user) == before
    deleted = _ok(_call(stack, "DELETE", f"/v1/users/{user}", token))
    assert int(deleted["rowsDeleted"]) == sum(before.values()), (deleted, before)

    # Nothing in PostgreSQL but the tombstone, nothing in Redis.
    assert _rows_of(db, user) == dict.fromkeys(USER_TABLES, 0)
    tombstone = db.execute("SELECT * FROM deleted_users WHERE user_id = %s", (user,)).fetchall()
    assert len(tombstone) == 1 and len(tombstone[0]) == 3, tombstone  # the id and two times only
    assert _keys_of(r, user) == []
    # Training reads none of their rows, even before the archive is rewritten.
    assert _extracted(spark, stack, user) == 0
    # The archive job rewrites the partitions that held them.
    erased = _run_archive_job(spark, stack, db)
    assert erased.removed == 3 and erased.dates, erased
    assert _archived_rows(stack, user) == 0
    assert _artifact_rows(stack, user) == 0
    assert db.execute("SELECT archive_erased_at FROM deleted_users WHERE user_id = %s", (user,)).fetchone()[0]
    assert _extracted(spark, stack, user) == 0
    assert _rows_of(db, user) == dict.fromkeys(USER_TABLES, 0)
    assert _keys_of(r, user) == []

    # The id is an unknown user now.
    unknown = _ok(_call(stack, "GET", f"/v1/users/{user}/recommendations?limit=10", token))
    assert unknown["tier"] == "TIER_POPULAR", unknown

    # An event that occurred before the deletion but arrives after it (a Kafka replay or
    # backlog) is dropped; one that occurs after it starts a new user.
    deleted_at = datetime.fromisoformat(deleted["deletedAt"].replace("Z", "+00:00"))
    late_id, fresh_id = f"del-{tag}-late", f"del-{tag}-fresh"
    events = [
        _event(movies[0], "LIKE", event_id=late_id, at=deleted_at - timedelta(seconds=30)),
        _event(movies[1], "LIKE", event_id=fresh_id),
    ]
    _ok(_call(stack, "POST", "/v1/events:batch", service_token(), {"userId": str(user), "events": events}))
    assert wait_for(lambda: _stored(db, [fresh_id]), 60), "the fresh event was never stored"
    assert _stored(db, [late_id]) == set()
    assert db.execute("SELECT movie_id FROM user_items WHERE user_id = %s", (user,)).fetchall() == [
        (movies[1],)
    ]

    # An admin may delete anyone.
    status, body = _call(stack, "DELETE", f"/v1/users/{user}", admin_token())
    assert status == 200, body
    assert _rows_of(db, user) == dict.fromkeys(USER_TABLES, 0)
