"""Scratch databases on the stack's PostgreSQL, for tests whose assertions need an empty one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

# A PostgreSQL server of your own for the scratch-database tests (test_import, test_migrations),
# which then run without the stack.
SERVER_OVERRIDE = os.environ.get("IMPORT_TEST_SERVER_URL")


def database_url(server_url: str, name: str) -> str:
    """`server_url` pointing at database `name` instead."""
    return urlsplit(server_url)._replace(path=f"/{name}").geturl()


def _drop(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def scratch_database(server_url: str, name: str) -> Iterator[str]:
    """A new, empty database `name` (a leftover of an earlier run is dropped first); yields its
    URL and drops it afterwards."""
    _drop(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege as exc:
            pytest.fail(
                f"cannot create the scratch database {name} ({exc}); the stack makes the app role "
                "SUPERUSER CREATEDB (stack.core.postgres_bootstrap): run `make up` again",
                pytrace=False,
            )
    try:
        yield database_url(server_url, name)
    finally:
        _drop(server_url, name)
