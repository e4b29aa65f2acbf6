"""The tombstone rule on Spark frames (batch.archive.erasure.without_erased): what training and the
archive job drop for a deleted user, and what they keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from batch.archive.erasure import without_erased
from recsys.domain.spark import TRAINING_SCHEMA

DELETED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _events(spark: Any) -> Any:
    rows = [
        ("before", 1, 10, "like", None, DELETED_AT - timedelta(seconds=1)),
        ("after", 1, 11, "like", None, DELETED_AT + timedelta(seconds=1)),
        ("at", 1, 12, "like", None, DELETED_AT),
        ("other", 2, 10, "like", None, DELETED_AT - timedelta(days=1)),
    ]
    return spark.createDataFrame(rows, TRAINING_SCHEMA)


def test_rows_before_the_deletion_go_later_ones_and_other_users_stay(spark: Any) -> None:
    kept = without_erased(spark, _events(spark), [(1, DELETED_AT)])
    assert sorted(r.event_id for r in kept.collect()) == ["after", "at", "other"]
    assert kept.columns == TRAINING_SCHEMA.names


def test_no_tombstone_changes_nothing(spark: Any) -> None:
    events = _events(spark)
    assert without_erased(spark, events, []) is events
    assert without_erased(spark, events, [(3, DELETED_AT)]).count() == 4
