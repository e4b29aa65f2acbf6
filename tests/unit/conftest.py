"""Shared fixtures for the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One small local Spark session for every pure-transform test."""
    from batch.common.spark import build_session

    session = build_session(
        "recsys-unit-tests", master="local[1]", extra_conf={"spark.sql.shuffle.partitions": "1"}
    )
    yield session
    session.stop()
