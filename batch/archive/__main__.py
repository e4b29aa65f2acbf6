"""`python -m batch.archive`: move interactions older than the recent window to the Parquet archive,
then rewrite the archive without the rows of users deleted since the last run (batch.archive.erasure).

    python -m batch.archive [--hours 48] [--as-of 2026-11-26T02:00:00Z]

Rows older than `--hours` (default: recsys.windows.RECENT) before `--as-of` (default: now) move.
The nightly DAG passes its run's logical date as `--as-of`, so a run for a past night (a
backfill, or bench/lifecycle.py's simulated nights) keeps the window that night had.

The archive is ARCHIVE_URI (a local folder by default; `s3a://bucket/path` for MinIO, with
the hadoop-aws package and fs.s3a.* settings passed via SPARK_CONF_* / spark-defaults).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from batch.archive.erasure import erase_archive, erase_artifacts
from batch.archive.job import archive
from batch.common.spark import build_session
from recsys import windows
from recsys.config import Settings
from recsys.logs import setup_logging
from recsys.tables import deleted_users


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--hours",
        type=float,
        default=windows.RECENT / timedelta(hours=1),
        help="archive rows older than this (default %(default)s)",
    )
    parser.add_argument(
        "--as-of",
        type=_instant,
        default=None,
        help="the moment the window ends (ISO 8601, default: now)",
    )
    opts = parser.parse_args(argv)
    settings = Settings.from_env()
    setup_logging("batch-archive", settings.log_level)
    spark = build_session("recsys-archive")
    try:
        results = archive(
            spark,
            settings.database_url,
            settings.archive_uri,
            timedelta(hours=opts.hours),
            now=opts.as_of,
        )
        erased = erase_archive(
            spark, settings.database_url, settings.archive_uri, opts.as_of or datetime.now(UTC)
        )
    finally:
        spark.stop()
    with psycopg.connect(settings.database_url) as conn:
        artifact_rows = erase_artifacts(Path(settings.model_dir), deleted_users.tombstones(conn))
    total = sum(r.deleted for r in results)
    print(f"archived {sum(r.extracted for r in results)} rows, deleted {total}", flush=True)
    print(
        f"erased {erased.removed} rows of {erased.tombstones} deleted users from "
        f"{len(erased.dates)} partitions and {artifact_rows} from model artifacts; "
        f"pruned {erased.pruned} tombstones",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
