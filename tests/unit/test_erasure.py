"""The tombstone rule (batch.archive.erasure): what training and the archive job drop for a deleted
user on Spark frames, and what the nightly pass removes from the kept model artifacts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batch.als.train import new_version, version_time
from batch.archive.erasure import erase_artifacts, without_erased
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


def _write_version(root: Path, version: str, users: list[int]) -> Path:
    d = root / version
    (d / "als" / "userFactors").mkdir(parents=True)
    # Both as Spark writes them: a directory of part files.
    (d / "pairs.parquet").mkdir()
    pairs = pa.table(
        {
            "user_id": pa.array(users, pa.int32()),
            "movie_id": pa.array([5] * len(users), pa.int32()),
            "strength": pa.array([1.0] * len(users), pa.float32()),
            "is_holdout": pa.array([i % 2 == 0 for i in range(len(users))]),
        }
    )
    pq.write_table(pairs.slice(0, 1), d / "pairs.parquet" / "part-00000.parquet")
    pq.write_table(pairs.slice(1), d / "pairs.parquet" / "part-00001.parquet")
    factors = pa.table({"id": pa.array(users, pa.int32()), "features": [[0.5, 0.25]] * len(users)})
    half = len(users) // 2
    pq.write_table(factors.slice(0, half), d / "als" / "userFactors" / "part-00000.parquet")
    pq.write_table(factors.slice(half), d / "als" / "userFactors" / "part-00001.parquet")
    return d


def _users(d: Path) -> dict[str, list[int]]:
    return {
        "pairs": sorted(pq.read_table(d / "pairs.parquet")["user_id"].to_pylist()),
        "factors": sorted(pq.read_table(d / "als" / "userFactors")["id"].to_pylist()),
    }


def test_model_artifacts_trained_before_a_deletion_lose_the_user(tmp_path: Path) -> None:
    before = _write_version(tmp_path, new_version(DELETED_AT - timedelta(hours=1)), [1, 2, 3, 4])
    after = _write_version(tmp_path, new_version(DELETED_AT + timedelta(hours=1)), [1, 2, 3, 4])
    removed = erase_artifacts(tmp_path, [(1, DELETED_AT), (9_000_000_000, DELETED_AT)])
    assert removed == 2  # the pairs and the user factors of the older version
    assert _users(before) == {key: [2, 3, 4] for key in ("pairs", "factors")}
    assert _users(after) == {key: [1, 2, 3, 4] for key in ("pairs", "factors")}
    assert sorted(p.name for p in (before / "als").iterdir()) == ["userFactors"]
    assert erase_artifacts(tmp_path, [(1, DELETED_AT)]) == 0  # nothing left to do


def test_version_time_reads_new_version() -> None:
    assert version_time(new_version(DELETED_AT)) == DELETED_AT
    assert version_time("hand-made") is None


def test_a_version_kept_from_before_the_pairs_file_loses_the_user_too(tmp_path: Path) -> None:
    # Versions trained before pairs.parquet kept strengths.parquet and holdout.parquet.
    d = tmp_path / new_version(DELETED_AT - timedelta(hours=1))
    d.mkdir()
    table = pa.table({"user_id": pa.array([1, 2], pa.int32()), "movie_id": pa.array([5, 5], pa.int32())})
    for name in ("strengths.parquet", "holdout.parquet"):
        pq.write_table(table, d / name)
    assert erase_artifacts(tmp_path, [(1, DELETED_AT)]) == 2
    for name in ("strengths.parquet", "holdout.parquet"):
        assert pq.read_table(d / name)["user_id"].to_pylist() == [2]
