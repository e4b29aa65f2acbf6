"""Schema migrations against a real PostgreSQL: from empty, re-run, downgrade + upgrade.

Each test runs in a database of its own, created through the stack's server (the shared
`recsys` database holds demo data and other tests' rows), and dropped afterwards.
`IMPORT_TEST_SERVER_URL=postgresql://user@host:port/db` points these tests at another server
instead of the stack (for developing without the full stack).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from recsys.migrate import alembic_config
from tests.integration.scratch import SERVER_OVERRIDE, scratch_database

pytestmark = [] if SERVER_OVERRIDE else [pytest.mark.stack]

APP_TABLES = {
    "movies", "user_profiles", "rt_user_interactions", "models", "batch_recommendations",
    "recommendation_logs", "recommendation_feedback",
}  # fmt: skip
BIN = Path(sys.executable).parent


@pytest.fixture
def fresh_db(server_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database of this test's own."""
    name = f"recsys_migtest_{request.node.name.removeprefix('test_')[:30]}_{os.getpid()}"
    with scratch_database(server_url, name) as url:
        yield url


def head() -> str:
    rev = ScriptDirectory.from_config(alembic_config("postgresql://unused/x")).get_current_head()
    assert rev is not None
    return rev


def recsys_migrate(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [str(BIN / "recsys-migrate"), *args], env=env, capture_output=True, text=True, timeout=120
    )


def version(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,):
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Everything the migrations define: columns, indexes, constraints, sequences, extensions."""
    queries = {
        "columns": """SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default
                        FROM information_schema.columns WHERE table_schema = 'public'
                       ORDER BY 1, 2""",
        "indexes": """SELECT tablename, indexname, indexdef FROM pg_indexes
                      WHERE schemaname = 'public' ORDER BY 2""",
        "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                            FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
        "sequences": """SELECT sequencename, start_value FROM pg_sequences
                        WHERE schemaname = 'public' ORDER BY 1""",
        "extensions": "SELECT extname FROM pg_extension ORDER BY 1",
    }
    with psycopg.connect(url) as conn:
        return {k: conn.execute(q).fetchall() for k, q in queries.items()}  # type: ignore[arg-type]


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_upgrade_from_empty(fresh_db: str) -> None:
    assert tables(fresh_db) == set()
    done = recsys_migrate(fresh_db)
    assert done.returncode == 0, done.stderr
    assert version(fresh_db) == head()
    assert APP_TABLES <= tables(fresh_db)
    snap = snapshot(fresh_db)
    assert {"vector", "pg_trgm"} <= {e[0] for e in snap["extensions"]}
    indexes = {name: definition for _, name, definition in snap["indexes"]}
    assert "USING hnsw (embedding vector_ip_ops)" in indexes["movies_embedding_hnsw"]
    assert "rt_interactions_user_time" in indexes and "models_one_live" in indexes
    columns = {(t, c): udt for t, c, _, udt, _, _ in snap["columns"]}
    assert columns[("movies", "embedding")] == "vector"
    assert columns[("movies", "genres")] == "_text"
    assert columns[("rt_user_interactions", "occurred_at")] == "timestamptz"

    # The schema works: a 64-d embedding is stored, and the checks refuse bad rows.
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO movies (movie_id, title, embedding) VALUES (1, 'A', %s::vector)",
            (str([0.5] * 64),),
        )
        assert conn.execute("SELECT vector_dims(embedding) FROM movies").fetchone() == (64,)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO rt_user_interactions (event_id, user_id, movie_id, event_type, occurred_at) "
                "VALUES ('e1', 1, 1, 'purchase', now())"
            )
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO rt_user_interactions (event_id, user_id, movie_id, event_type, rating, "
                "occurred_at) VALUES ('e2', 1, 1, 'rate', 5.5, now())"
            )


def test_rerun_is_a_no_op(fresh_db: str) -> None:
    assert recsys_migrate(fresh_db).returncode == 0
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO movies (movie_id, title) VALUES (7, 'kept')")
    before = snapshot(fresh_db)
    again = recsys_migrate(fresh_db)
    assert again.returncode == 0, again.stderr
    assert version(fresh_db) == head()
    assert snapshot(fresh_db) == before
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT title FROM movies").fetchall() == [("kept",)]


def test_downgrade_and_upgrade_round_trip(fresh_db: str) -> None:
    cfg = alembic_config(fresh_db)
    command.upgrade(cfg, "head")
    before = snapshot(fresh_db)

    command.downgrade(cfg, "base")
    assert version(fresh_db) is None
    assert tables(fresh_db) <= {"alembic_version"}
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regclass('public.user_id_seq')").fetchone() == (None,)

    command.upgrade(cfg, "head")
    assert version(fresh_db) == head()
    assert snapshot(fresh_db) == before


def test_every_revision_steps_down_and_up(fresh_db: str) -> None:
    """Each migration's downgrade undoes exactly its upgrade (checked one revision at a time)."""
    cfg = alembic_config(fresh_db)
    revisions = [r.revision for r in ScriptDirectory.from_config(cfg).walk_revisions("base", "heads")]
    for rev in reversed(revisions):  # oldest first
        command.upgrade(cfg, rev)
        at_rev = snapshot(fresh_db)
        command.downgrade(cfg, "-1")
        command.upgrade(cfg, rev)
        assert snapshot(fresh_db) == at_rev, f"revision {rev} does not round-trip"
    assert version(fresh_db) == head()
