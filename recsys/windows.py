"""The two spans of time the data layout is built on, in one place.

RECENT: what `rt_user_interactions` holds, the speed layer's window. Anything older lives in
the archive (Parquet by date, `batch.archive`): the importer files history there directly and
the nightly DAG's archive task moves what ages out of the window. The window is wall-clock
time, because it is about where rows live now, not about what they say.

TRAINING_DAYS: how far back ALS trains, counted from the newest event the system holds (not
from the wall clock), so an imported dataset that ended years ago still trains. 365 days covers
the whole of MovieLens 100K (Sep 1997 - Apr 1998, 214 days) and the last year of any longer
history; `batch.als.train --days` overrides it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

RECENT = timedelta(hours=48)
TRAINING_DAYS = 365


def recent_cutoff(now: datetime | None = None) -> datetime:
    """Events that occurred before this instant belong in the archive."""
    return (now or datetime.now(UTC)) - RECENT
