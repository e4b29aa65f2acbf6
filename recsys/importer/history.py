"""Imported history goes where history lives: events older than the recent window are filed
into the archive (Parquet by date, written by `batch.archive.job.write_rows`, the same writer
the nightly archive task uses), only the recent window into `rt_user_interactions`.

So an imported dataset looks exactly as if the system had run through it: the nightly job
trains on it from the archive, and PostgreSQL's window stays a window (recsys.windows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from recsys import windows
from recsys.config import ENV_FILE
from recsys.importer.model import Interaction


@dataclass(frozen=True)
class Archive:
    """Where and from when history is filed."""

    uri: str
    cutoff: datetime

    @classmethod
    def from_env(cls, env: Mapping[str, str], uri: str | None = None) -> Archive:
        raw = uri or env.get("ARCHIVE_URI", "")
        if not raw:
            raise ValueError("ARCHIVE_URI is not set (environment or .env); or pass --archive-uri")
        # A relative folder is relative to the repository, as for every program of the stack.
        if "://" not in raw and not Path(raw).is_absolute():
            raw = str(ENV_FILE.parent / raw)
        return cls(raw, windows.recent_cutoff())

    def is_history(self, event: Interaction) -> bool:
        return event.occurred_at < self.cutoff

    def file(self, history: Sequence[Interaction], recent: Sequence[Interaction]) -> Filed:
        """Merge the `history` events the archive does not hold yet into it.

        Each event is filed once whatever its date: a re-import of a dataset whose timestamps
        moved (the synthetic one is relative to now) adds nothing, and a `recent` event that
        was archived by an earlier import is reported so it does not enter PostgreSQL again.
        """
        if not history and not self._exists():
            return Filed(set(), set())
        import pandas as pd

        from batch.archive.job import COLUMNS, event_ids, write_rows
        from batch.common.spark import build_session

        spark = build_session("recsys-import-history")
        try:
            held = event_ids(spark, self.uri)
            new = [e for e in history if e.event_id not in held]
            if new:
                rows = pd.DataFrame(
                    {
                        "event_id": [e.event_id for e in new],
                        "user_id": [e.user_id for e in new],
                        "movie_id": [e.movie_id for e in new],
                        "event_type": [e.event_type for e in new],
                        "rating": [e.rating for e in new],
                        "request_id": [None] * len(new),
                        "occurred_at": pd.to_datetime([e.occurred_at for e in new], utc=True),
                        "ingested_at": pd.Timestamp(datetime.now(UTC)),
                    }
                )[COLUMNS]
                write_rows(spark, self.uri, rows)
        finally:
            spark.stop()
        return Filed({e.event_id for e in new}, {e.event_id for e in recent if e.event_id in held})

    def _exists(self) -> bool:
        return "://" in self.uri or Path(self.uri).is_dir()


@dataclass(frozen=True)
class Filed:
    new_ids: set[str]
    # Recent events an earlier import already archived: they stay there.
    recent_archived: set[str]
