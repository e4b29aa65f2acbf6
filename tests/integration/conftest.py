"""Fixtures shared by the integration tests (the `stack` fixture itself is tests/conftest.py's).

Module-scoped: each test module gets its own connection and its own scratch databases. The
helpers the tests and the benchmarks share (REST calls with a service token, seeded movies)
are in stack/client.py; the batch tests' data in batchdata.py.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from stack.checks import admin_dsn
from stack.client import connect, real_genre_movies
from tests.integration.batchdata import PYTHON, REPO, TEST_DB
from tests.integration.scratch import SERVER_OVERRIDE


@pytest.fixture(scope="module")
def db(stack: Any) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the stack's database, pgvector registered."""
    conn = connect(stack.database_url)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def trigger_seconds(stack: Any) -> float:
    """The streaming job's micro-batch interval."""
    return float(stack.env.get("STREAM_TRIGGER_SECONDS", "5"))


@pytest.fixture(scope="module")
def genre_movies(db: psycopg.Connection[Any]) -> dict[str, list[int]]:
    """The live model's embedded movies by genre, most popular first.

    The stack trains a model on the demo catalogue at `make up`, so this checks the real
    pipeline end to end: the trained item factors, fold-in and the HNSW query. Genres with
    fewer than 100 embedded movies are left out: a list of 20 says too little about them.
    """
    movies = real_genre_movies(db, min_movies=100)
    assert movies, "no live model with embedded movies (make up trains the first one)"
    return movies


@pytest.fixture(scope="module")
def server_url(request: pytest.FixtureRequest) -> str:
    """The PostgreSQL server scratch databases are made on (IMPORT_TEST_SERVER_URL, else the stack's)."""
    return SERVER_OVERRIDE or request.getfixturevalue("stack").database_url


@pytest.fixture(scope="module")
def batch_env(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A migrated database of the batch tests' own (TEST_DB), Redis db 15, a scratch archive."""
    admin = admin_dsn(stack.cfg)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEST_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEST_DB} OWNER recsys")
    with psycopg.connect(admin_dsn(stack.cfg, TEST_DB), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    base = stack.database_url.rsplit("/", 1)[0]
    tmp = tmp_path_factory.mktemp("batch")
    env = {
        **os.environ,
        "DATABASE_URL": f"{base}/{TEST_DB}",
        "REDIS_URL": stack.redis_url.rsplit("/", 1)[0] + "/15",
        "ARCHIVE_URI": str(tmp / "archive"),
        "MODEL_DIR": str(tmp / "models"),
        "SPARK_DRIVER_MEMORY": "2g",
    }
    subprocess.run([PYTHON, "-m", "recsys.migrate"], env=env, cwd=REPO, check=True)
    yield env
